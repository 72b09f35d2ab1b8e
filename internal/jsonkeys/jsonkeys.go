// Package jsonkeys reads JSON records written before driftline's field
// names moved to snake_case (issue #13): registry versions, gate policies
// and token records stored in Redis by an earlier release.
package jsonkeys

import (
	"bytes"
	"encoding/json"
)

// Rename returns the JSON object raw with each top-level key of legacy
// renamed to its value, unless the new key is already present. raw is
// returned unchanged when it is not an object or holds no legacy key; it
// is never modified in place.
func Rename(raw []byte, legacy map[string]string) []byte {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return raw
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(trimmed, &obj) != nil {
		return raw
	}
	changed := false
	for old, cur := range legacy {
		v, ok := obj[old]
		if !ok {
			continue
		}
		delete(obj, old)
		if _, exists := obj[cur]; !exists {
			obj[cur] = v
		}
		changed = true
	}
	if !changed {
		return raw
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return raw
	}
	return out
}
