package registry

import (
	"encoding/json"

	"github.com/driftline/driftline/internal/jsonkeys"
)

// UnmarshalJSON reads a version record, also as releases before the
// snake_case field names stored it in Redis (createdBy).
func (v *Version) UnmarshalJSON(b []byte) error {
	type plain Version
	return json.Unmarshal(jsonkeys.Rename(b, map[string]string{"createdBy": "created_by"}), (*plain)(v))
}

// UnmarshalJSON reads a lineage, also as releases before the snake_case
// field names stored it (specHash).
func (l *Lineage) UnmarshalJSON(b []byte) error {
	type plain Lineage
	return json.Unmarshal(jsonkeys.Rename(b, map[string]string{"specHash": "spec_hash"}), (*plain)(l))
}
