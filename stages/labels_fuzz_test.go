package stages

import (
	"encoding/json"
	"math"
	"strconv"
	"testing"

	"github.com/driftline/driftline/models"
)

// FuzzLabelDecoder feeds label records to the label decoder of a binary
// model: it never panics; a refusal has a known reason and a detail; an
// accepted record is a JSON object that encoding/json reads to the same id
// (a string, or a number written back with strconv) and the same label,
// which is 0 or 1, and its id is 1 to labels.max_id_bytes bytes.
//
//	go test -run '^$' -fuzz FuzzLabelDecoder -fuzztime 60s ./stages/
func FuzzLabelDecoder(f *testing.F) {
	spec := testSpec(f, false)
	for _, s := range []string{
		`{"event_id":"e-1-42","label":1}`,
		`{"label":0,"event_id":"e-1-43","ts":"2025-01-01T00:00:00Z"}`,
		`{"event_id":42,"label":1.0}`,
		`{"event_id":"e\u002d1","label":-5}`,
		`{"event_id":"e-1","label":1e38,"x":[1,{"y":null}]}`,
		`{"event_id":"alice@example.com","label":"1"}`,
		`{"event_id":null,"label":1}`,
		`{"event_id":"e-1","label":1,"event_id":"e-2"}`,
		` { "event_id" : "e-1" , "label" : 0 } `,
		`[{"event_id":"e-1","label":1}]`,
	} {
		f.Add([]byte(s))
	}
	known := map[string]bool{ReasonLabelSyntax: true, ReasonLabelMissing: true, ReasonLabelIDTooLong: true,
		ReasonLabelInvalid: true, ReasonLabelOutOfRange: true}
	d := NewLabelDecoder(spec)
	f.Fuzz(func(t *testing.T, in []byte) {
		id, label, rej := d.Decode(in)
		if rej.Reason != "" {
			if !known[rej.Reason] || rej.Stage != StageLabels || rej.Detail == "" {
				t.Fatalf("rejection %+v", rej)
			}
			return
		}
		if len(id) == 0 || len(id) > spec.Labels.MaxIDBytes || !models.ValidLabel(models.LinkSigmoid, 1, label) {
			t.Fatalf("accepted id %q (%d bytes), label %v", id, len(id), label)
		}
		var obj map[string]any
		if err := json.Unmarshal(in, &obj); err != nil {
			t.Fatalf("accepted %q, encoding/json says %v", in, err)
		}
		y, ok := obj[spec.Labels.Field].(float64)
		if !ok || float32(y) != label {
			t.Fatalf("label %v, encoding/json reads %#v", label, obj[spec.Labels.Field])
		}
		switch v := obj[spec.Schema.IDField].(type) {
		case string:
			if v != id {
				t.Fatalf("id %q, encoding/json reads %q", id, v)
			}
		case float64:
			if math.IsInf(v, 0) || strconv.FormatFloat(v, 'f', -1, 64) != id {
				t.Fatalf("id %q, encoding/json reads %v", id, v)
			}
		default:
			t.Fatalf("id %q, encoding/json reads %#v", id, v)
		}
	})
}
