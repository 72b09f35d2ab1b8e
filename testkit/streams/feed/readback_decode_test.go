package feed

import (
	"encoding/json"
	"testing"
)

// samplePrediction is a prediction as stages.Score writes it for the
// demo's spec (passthrough fields included).
var samplePrediction = []byte(`{"event_id":"e-42-123456","score":0.7312345678,"class":1,"warm":true,"model":"demo-logistic","version":"2","arm":"champion","partition":1,"offset":123456,"user_id":"p:3fa9c2b1e0d4a7f6","country":"DE","device":"mobile","channel":"web","amount":123.45}`)

func TestPredictionEventIDRefusesWhatEncodingJSONRefuses(t *testing.T) {
	for _, v := range []string{
		string(samplePrediction),
		`{"event_id":"e-1-7"}`,
		`{"score":1,"event_id":"e-1-8","x":{"event_id":"nested"}}`,
		`{"event_id":"e-1-\u0039"}`,
		`{"event_id":"x","a":tru}`,
		`{"event_id":"x","a":1}}`,
		`{"event_id":"x","a":[1,}`,
		`{"event_id":"x","a":"\q"}`,
		`{"event_id":"x","a":01}`,
		`{"event_id":"x" "a":1}`,
		`{"event_id":"x"`,
		`{"event_id":7}`,
		`["e-1-7"]`,
		`null`,
		``,
	} {
		var want struct {
			EventID string `json:"event_id"`
		}
		wantErr := json.Unmarshal([]byte(v), &want)
		id, ok := predictionEventID([]byte(v))
		if ok != (wantErr == nil) || (ok && id != want.EventID) {
			t.Errorf("predictionEventID(%q) = %q, %v; encoding/json: %q, error %v", v, id, ok, want.EventID, wantErr)
		}
	}
}

func BenchmarkPredictionEventID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := predictionEventID(samplePrediction); !ok {
			b.Fatal("sample prediction refused")
		}
	}
}
