package rollout

import (
	"encoding/json"

	"github.com/driftline/driftline/internal/jsonkeys"
)

// legacyGateKeys are a Gate's JSON names before they moved to snake_case.
var legacyGateKeys = map[string]string{
	"minSamples": "min_samples", "maxDelta": "max_delta", "failureLimit": "failure_limit",
	"consecutiveErrorLimit": "consecutive_error_limit", "bakeSamples": "bake_samples", "blockOnOpenDrift": "block_on_open_drift",
}

// UnmarshalJSON reads a gate, also as releases before the snake_case field
// names stored it in an admin's policy record.
func (g *Gate) UnmarshalJSON(b []byte) error {
	type plain Gate
	return json.Unmarshal(jsonkeys.Rename(b, legacyGateKeys), (*plain)(g))
}
