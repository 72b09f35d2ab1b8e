package stages

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/pipeline"
)

// chain builds decode → validate → anonymize → featurize → score for spec,
// with the real learner; rdb may be nil without entity aggregates.
type chain struct {
	spec     *pipeline.Spec
	decode   *Decode
	validate *Validate
	anon     *Anonymize
	fz       *Featurize
	champion *ServedModel
	score    *Score
}

func newChain(t testing.TB, spec *pipeline.Spec, fz *Featurize) *chain {
	t.Helper()
	keys := testKeys()
	an, err := NewAnonymize(spec, keys)
	if err != nil {
		t.Fatal(err)
	}
	if fz == nil {
		if fz, err = NewFeaturize(spec, nil); err != nil {
			t.Fatal(err)
		}
	}
	l, err := NewLearner(spec, fz)
	if err != nil {
		t.Fatal(err)
	}
	champ := NewServedModel(spec.Model.Name, spec.Model.Version, ArmChampion, l)
	return &chain{spec: spec, decode: NewDecode(spec), validate: NewValidate(spec), anon: an, fz: fz,
		champion: champ, score: NewScore(spec, champ, keys.AESKeyID)}
}

func (c *chain) stages() []pipeline.Stage {
	return []pipeline.Stage{c.decode, c.validate, c.anon, c.fz, c.score}
}

type prediction struct {
	EventID   string   `json:"event_id"`
	Score     *float64 `json:"score"`
	Class     *int     `json:"class"`
	Warm      *bool    `json:"warm"`
	Model     string   `json:"model"`
	Version   string   `json:"version"`
	Arm       string   `json:"arm"`
	Partition *int32   `json:"partition"`
	Offset    *int64   `json:"offset"`
	UserID    *string  `json:"user_id"`
	Email     *string  `json:"email"`
	Phone     *string  `json:"phone"`
	Country   *string  `json:"country"`
}

func TestScorePredictions(t *testing.T) {
	spec := testSpec(t, false)
	c := newChain(t, spec, nil)
	evs, rows := genEvents(t, 5, 50, 20)
	rows[3] = []byte(`{"event_id":"broken"`)
	rows[7] = row(map[string]string{"event_id": `"quote\"and\\slash\u00e9"`, "email": "null"})
	b := newBatch(1000, rows...)
	mustProcess(t, b, c.stages()...)
	if len(b.Outputs) != 49 || len(b.Scores) != 49 {
		t.Fatalf("%d outputs, %d scores for 49 live rows", len(b.Outputs), len(b.Scores))
	}
	for j, out := range b.Outputs {
		i := b.Features.Row[j]
		var p prediction
		dec := json.NewDecoder(strings.NewReader(string(out.Value)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("row %d: %v in %s", i, err, out.Value)
		}
		wantID := evs[i].ID
		if i == 7 {
			wantID = "quote\"and\\slashé"
		}
		if p.EventID != wantID || string(out.Key) != wantID {
			t.Errorf("row %d: event_id %q key %q, want %q", i, p.EventID, out.Key, wantID)
		}
		if out.Topic != "predictions" {
			t.Errorf("topic %q", out.Topic)
		}
		if p.Score == nil || *p.Score < 0 || *p.Score > 1 || float32(*p.Score) != b.Scores[j] {
			t.Errorf("row %d: score %v, want %v", i, p.Score, b.Scores[j])
		} else if p.Class == nil || *p.Class != models.PredictedClass(*p.Score, models.Threshold) {
			t.Errorf("row %d: class %v for score %v", i, p.Class, *p.Score)
		}
		if p.Warm == nil || *p.Warm {
			t.Errorf("row %d: warm %v from a model that has learned nothing", i, p.Warm)
		}
		if p.Model != "unit-logistic" || p.Version != "7" || p.Arm != ArmChampion {
			t.Errorf("row %d: model %s/%s/%s", i, p.Model, p.Version, p.Arm)
		}
		if p.Partition == nil || *p.Partition != 3 || p.Offset == nil || *p.Offset != int64(1000+i) {
			t.Errorf("row %d: partition %v offset %v", i, p.Partition, p.Offset)
		}
		// passthrough fields are the anonymized values
		if p.UserID == nil || !strings.HasPrefix(*p.UserID, TokenPrefix) {
			t.Errorf("row %d: user_id %v", i, p.UserID)
		}
		if i == 7 {
			if p.Email != nil {
				t.Errorf("null email passed through as %q", *p.Email)
			}
		} else if p.Email == nil {
			t.Errorf("row %d: no email", i)
		} else if pt, err := Decrypt(testKeys().AES, *p.Email, []byte("email")); err != nil || string(pt) != evs[i].Email {
			t.Errorf("row %d: email decrypts to %q, %v", i, pt, err)
		}
		if i != 7 && (p.Phone == nil || !strings.HasPrefix(*p.Phone, "*") || strings.Contains(*p.Phone, evs[i].Phone)) {
			t.Errorf("row %d: phone %v", i, p.Phone)
		}
		if p.Country == nil || (i != 7 && *p.Country != evs[i].Country) {
			t.Errorf("row %d: country %v", i, p.Country)
		}
		for _, pii := range []string{evs[i].UserID, evs[i].Email, evs[i].Phone} {
			if strings.Contains(string(out.Value), pii) {
				t.Errorf("row %d: prediction holds plaintext %q", i, pii)
			}
		}
		if len(out.Headers) != 1 || out.Headers[0].Key != pipeline.HeaderKeyID || string(out.Headers[0].Value) != "unit-key-1" {
			t.Errorf("row %d: headers %v, want the key id", i, out.Headers)
		}
	}
}

func TestScoreNoKeyHeaderWithoutCiphertext(t *testing.T) {
	spec := parseTestSpec(t, false, map[string]string{"passthrough: [user_id, email, phone, country]": "passthrough: [country, n, flag, ts, f0]"})
	c := newChain(t, spec, nil)
	b := newBatch(0, row(nil), row(map[string]string{"n": "null"}))
	mustProcess(t, b, c.stages()...)
	for j, out := range b.Outputs {
		if len(out.Headers) != 0 {
			t.Errorf("headers %v without an encrypted passthrough", out.Headers)
		}
		var m map[string]any
		if err := json.Unmarshal(out.Value, &m); err != nil {
			t.Fatalf("%v: %s", err, out.Value)
		}
		if m["ts"] != "2025-03-04T05:06:07.123456Z" || m["f0"] != 0.25 || m["flag"] != true {
			t.Errorf("passthrough %v", m)
		}
		if want := []any{7.0, nil}[j]; m["n"] != want {
			t.Errorf("row %d: n = %v, want %v", j, m["n"], want)
		}
	}
	// An empty batch produces nothing.
	e := newBatch(0, []byte("x"))
	mustProcess(t, e, c.stages()...)
	if len(e.Outputs) != 0 {
		t.Errorf("%d outputs for no live row", len(e.Outputs))
	}
}

// TestScoreColdModelDecisionRule: the cold model. Before any
// label a logistic model scores exactly 0.5, which used to map to class
// 1, so a fresh fraud model flagged every payment. A tie at the threshold
// is class 0, the prediction says "warm":false until the model has
// learned, and model.threshold moves the cut.
func TestScoreColdModelDecisionRule(t *testing.T) {
	for _, tc := range []struct {
		threshold string
		wantClass int
	}{{"", 0}, {", threshold: 0.5", 0}, {", threshold: 0.4", 1}} {
		spec := parseTestSpec(t, false, map[string]string{`learn_rate: 0.5}`: `learn_rate: 0.5` + tc.threshold + `}`})
		c := newChain(t, spec, nil)
		_, rows := genEvents(t, 5, 8, 20)
		b := newBatch(0, rows...)
		mustProcess(t, b, c.stages()...)
		if len(b.Outputs) != 8 {
			t.Fatalf("%d predictions for 8 rows", len(b.Outputs))
		}
		for _, out := range b.Outputs {
			var p prediction
			if err := json.Unmarshal(out.Value, &p); err != nil {
				t.Fatal(err)
			}
			if p.Score == nil || *p.Score != 0.5 || p.Class == nil || *p.Class != tc.wantClass || p.Warm == nil || *p.Warm {
				t.Fatalf("threshold %q: cold prediction %s, want score 0.5, class %d, warm false", tc.threshold, out.Value, tc.wantClass)
			}
		}
		// One labelled row warms the model up.
		rows1 := FeatureRows(&b.Features)
		rows1.N = 1
		if err := c.champion.Learn(&rows1, []float32{1}); err != nil {
			t.Fatal(err)
		}
		b = newBatch(0, rows...)
		mustProcess(t, b, c.stages()...)
		var p prediction
		if err := json.Unmarshal(b.Outputs[0].Value, &p); err != nil {
			t.Fatal(err)
		}
		if p.Warm == nil || !*p.Warm {
			t.Errorf("after one label: warm %v, want true (%s)", p.Warm, b.Outputs[0].Value)
		}
	}
}

// TestScorePlainPassthroughBytes checks that anonymized passthrough fields,
// which score copies between quotes unchecked, come out byte for byte as
// the escaping writer would write them, and that a field the text stage
// rewrites is not taken as plain.
func TestScorePlainPassthroughBytes(t *testing.T) {
	spec := testSpec(t, false)
	_, rows := genEvents(t, 31, 200, 50)
	c := newChain(t, spec, nil)
	b := newBatch(0, rows...)
	mustProcess(t, b, c.stages()...)
	if len(b.Outputs) != len(rows) {
		t.Fatalf("%d outputs for %d rows", len(b.Outputs), len(rows))
	}
	plain := 0
	for k, n := range spec.Output.Passthrough {
		if !c.score.plainPassthrough[k] {
			continue
		}
		plain++
		col := b.Record.Column(spec.FieldIndex(n)).(*array.String)
		for i, o := range b.Outputs {
			want := pipeline.AppendJSONString([]byte(`"`+n+`":`), col.Value(i))
			if !bytes.Contains(o.Value, want) {
				t.Fatalf("row %d: %s not in %s", i, want, o.Value)
			}
		}
	}
	if plain != 2 { // user_id (pseudonymized) and email (encrypted); phone is masked
		t.Fatalf("%d plain passthrough fields, want 2", plain)
	}
	text := testSpec(t, false)
	text.Stages.Text.PII = append(text.Stages.Text.PII, pipeline.TextPIISpec{Field: "email"})
	s := NewScore(text, c.champion, "k")
	for k, n := range text.Output.Passthrough {
		if n == "email" && s.plainPassthrough[k] {
			t.Fatal("email is rewritten by the text stage but taken as plain")
		}
	}
}
