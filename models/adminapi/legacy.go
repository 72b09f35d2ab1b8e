package adminapi

import (
	"encoding/json"

	"github.com/driftline/driftline/internal/jsonkeys"
)

// UnmarshalJSON reads a token record, also as releases before the
// snake_case field names stored it in Redis (createdBy).
func (t *TokenInfo) UnmarshalJSON(b []byte) error {
	type plain TokenInfo
	return json.Unmarshal(jsonkeys.Rename(b, map[string]string{"createdBy": "created_by"}), (*plain)(t))
}
