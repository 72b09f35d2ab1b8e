package registry

import (
	"encoding/json"
	"testing"
)

// A version record stored before the snake_case names still reads.
func TestVersionReadsLegacyRecord(t *testing.T) {
	var v Version
	if err := json.Unmarshal([]byte(`{"created":"2026-01-02T03:04:05Z","createdBy":"retrain","lineage":{"parent":1,"specHash":"abc"}}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.CreatedBy != "retrain" || v.Lineage.SpecHash != "abc" || v.Lineage.Parent != 1 {
		t.Fatalf("legacy record read as %+v", v)
	}
	b, _ := json.Marshal(v)
	var back Version
	if err := json.Unmarshal(b, &back); err != nil || back.CreatedBy != "retrain" || back.Lineage.SpecHash != "abc" {
		t.Fatalf("round trip %s: %+v %v", b, back, err)
	}
}
