package pipeline_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/spectest"
)

// baseSpec is valid. Tests edit it by replacing one exact line; lineOf
// finds the line numbers errors must name.
const baseSpec = `name: payments
topics:
  input: events
  predictions: predictions
  dlq: events.dlq
kafka:
  brokers: [kafka-0:9092]
  session_timeout: 6s
batch:
  size: 256
  linger: 2ms
schema:
  id_field: event_id
  time_field: ts
  fields:
    - {name: event_id, type: string, required: true}
    - {name: ts, type: timestamp, required: true}
    - {name: amount, type: float, required: true, min: 0, max: 100000}
    - {name: country, type: string, enum: [US, GB]}
    - {name: card, type: string, pii: card_number}
stages:
  dedupe:
    ttl: 1h
  anonymize:
    hmac_key_env: HMAC_KEY
    encryption_key_env: AES_KEY
    encryption_key_id: k1
    fields:
      - {field: card, op: pseudonymize}
  featurize:
    numeric: [amount]
    categorical: [country]
model:
  name: fraud
labels:
  ttl: 30m
`

const specFile = "specs/payments.yaml"

func edit(t *testing.T, old, new string) string {
	t.Helper()
	if strings.Count(baseSpec, old) != 1 {
		t.Fatalf("edit: %q is not one line of the base spec", old)
	}
	return strings.Replace(baseSpec, old, new, 1)
}

func TestParseBaseSpec(t *testing.T) {
	s, err := pipeline.ParseSpec(specFile, []byte(baseSpec))
	if err != nil {
		t.Fatalf("base spec: %v", err)
	}
	if s.Name != "payments" || s.Batch.Size != 256 || s.Batch.Linger.D() != 2*time.Millisecond || s.Kafka.SessionTimeout.D() != 6*time.Second {
		t.Errorf("parsed %+v", s)
	}
	if f := s.Field("amount"); f == nil || f.Min == nil || *f.Min != 0 || f.Max == nil || *f.Max != 100000 || !f.Required {
		t.Errorf("amount field: %+v", f)
	}
	if got := s.FieldIndex("card"); got != 4 {
		t.Errorf("FieldIndex(card) = %d, want 4", got)
	}
	if s.FieldIndex("nope") != -1 || s.Field("nope") != nil {
		t.Error("an unknown field was found")
	}
	if sch := s.ArrowSchema(); sch.NumFields() != 5 || sch.Field(2).Type.ID() != pipeline.ArrowType(pipeline.TypeFloat).ID() {
		t.Errorf("arrow schema %v", sch)
	}
}

func TestSpecErrorsNameFileLineAndField(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, new string
		field    string
		at       string // a substring of the line the error must name
		msg      string // a substring of the message
	}{
		{"unknown top-level key", "model:\n", "modle: {}\nmodel:\n", "modle", "modle:", `unknown key "modle"`},
		{"unknown nested key", "  linger: 2ms\n", "  linger: 2ms\n  lingr: 3ms\n", "batch.lingr", "lingr:", `unknown key "lingr"`},
		{"unknown key in a flow item", "{name: country, type: string, enum: [US, GB]}", "{name: country, type: string, enum: [US, GB], colour: red}", "schema.fields[3].colour", "colour", "unknown key"},
		{"wrong type", "  size: 256", "  size: lots", "batch.size", "size: lots", `"lots" is not an integer`},
		{"wrong type in a flow item", "{name: ts, type: timestamp, required: true}", "{name: ts, type: timestamp, required: maybe}", "schema.fields[1].required", "required: maybe", `"maybe" is not true or false`},
		{"long wrong value", "  size: 256", "  size: a-very-long-non-number", "batch.size", "a-very-long", `"a-very-long-non-number" is not an integer`},
		{"list for a string", "  input: events", "  input: [a, b]", "topics.input", "input: [a, b]", "want a single value, got a list"},
		{"unknown field type", "{name: amount, type: float,", "{name: amount, type: decimal,", "schema.fields[2].type", "decimal", `unknown type "decimal"`},
		{"enum on a float", "{name: amount, type: float, required: true, min: 0, max: 100000}", "{name: amount, type: float, required: true, enum: [a, b]}", "schema.fields[2].enum", "enum: [a, b]", "enum applies to string fields only"},
		{"range on a string", "{name: country, type: string, enum: [US, GB]}", "{name: country, type: string, min: 1}", "schema.fields[3].min", "min: 1", "range applies"},
		{"min above max", "min: 0, max: 100000", "min: 5, max: 1", "schema.fields[2].min", "min: 5", "above max"},
		{"id field missing from fields", "  id_field: event_id", "  id_field: txn_id", "schema.id_field", "id_field: txn_id", `"txn_id", which is not in schema.fields`},
		{"id field not required", "{name: event_id, type: string, required: true}", "{name: event_id, type: string}", "schema.id_field", "id_field:", "must be required"},
		{"time field wrong type", "  time_field: ts", "  time_field: amount", "schema.time_field", "time_field: amount", "has type float"},
		{"PII without an operator", "      - {field: card, op: pseudonymize}\n", "      - {field: country, op: mask}\n", "schema.fields[4].pii", "pii: card_number", "no operator"},
		{"unknown operator", "op: pseudonymize", "op: shred", "stages.anonymize.fields[0].op", "op: shred", `unknown operator "shred"`},
		{"hmac key from env and file", "    hmac_key_env: HMAC_KEY\n", "    hmac_key_env: HMAC_KEY\n    hmac_key_file: /run/secrets/hmac\n", "stages.anonymize.hmac_key_file", "hmac_key_file:", "not both"},
		{"encryption key from env and file", "    encryption_key_env: AES_KEY\n", "    encryption_key_env: AES_KEY\n    encryption_key_file: /run/secrets/aes\n", "stages.anonymize.encryption_key_file", "encryption_key_file:", "not both"},
		{"pseudonymize without a key", "    hmac_key_env: HMAC_KEY\n", "", "stages.anonymize.hmac_key_env", "  anonymize:", "needs a key"},
		{"dlq_payload encrypt without a key", "    encryption_key_env: AES_KEY\n", "    dlq_payload: encrypt\n", "stages.anonymize.encryption_key_env", "  anonymize:", "need a key"},
		{"encrypt without a key id", "    encryption_key_id: k1\n", "", "stages.anonymize.encryption_key_id", "  anonymize:", "key id"},
		{"unknown dlq_payload", "    encryption_key_id: k1\n", "    encryption_key_id: k1\n    dlq_payload: plain\n", "stages.anonymize.dlq_payload", "dlq_payload: plain", `unknown value "plain"`},
		{"featurize unknown field", "    numeric: [amount]", "    numeric: [amount, nope]", "stages.featurize.numeric[1]", "numeric: [amount, nope]", `"nope"`},
		{"hash bits out of range", "    categorical: [country]\n", "    categorical: [country]\n    hash_bits: 40\n", "stages.featurize.hash_bits", "hash_bits: 40", "[1, 24]"},
		{"bad duration", "  session_timeout: 6s", "  session_timeout: 6 seconds", "kafka.session_timeout", "session_timeout:", "invalid duration `6 seconds`"},
		{"bad nested duration", "    ttl: 1h", "    ttl: forever", "stages.dedupe.ttl", "ttl: forever", "invalid duration"},
		{"negative recent ids", "    ttl: 1h", "    ttl: 1h\n    recent_ids: -1", "stages.dedupe.recent_ids", "recent_ids: -1", "must be in [0, 16777216]"},
		{"dedupe ttl under a millisecond", "    ttl: 1h", "    ttl: 500us", "stages.dedupe.ttl", "ttl: 500us", "must be at least 1ms"},
		{"negative dedupe ttl", "    ttl: 1h", "    ttl: -1h", "stages.dedupe.ttl", "ttl: -1h", "must be at least 1ms"},
		{"duration as a list", "  ttl: 30m", "  ttl: [30m]", "labels.ttl", "ttl: [30m]", "want a duration such as 250ms, 5s or 24h, got a list"},
		{"missing model name", "  name: fraud", "  version: \"2\"", "model.name", "model:", "is required"},
		{"unknown engine", "  name: fraud", "  name: fraud\n  engine: tpu", "model.engine", "engine: tpu", `unknown engine "tpu"`},
		{"provider without onnxruntime", "  name: fraud", "  name: fraud\n  execution_provider: cuda", "model.execution_provider", "execution_provider: cuda", "onnxruntime only"},
		{"batch size too big", "  size: 256", "  size: 2000000", "batch.size", "size: 2000000", "must be in"},
		{"propagated driftline header", "    categorical: [country]\n", "    categorical: [country]\noutput:\n  propagate_headers: [traceparent, driftline.reason]\n", "output.propagate_headers[1]", "propagate_headers:", "pipeline's own headers"},
		{"propagated header twice", "    categorical: [country]\n", "    categorical: [country]\noutput:\n  propagate_headers: [traceparent, traceparent]\n", "output.propagate_headers[1]", "propagate_headers:", "listed twice"},
		{"propagated header with a space", "    categorical: [country]\n", "    categorical: [country]\noutput:\n  propagate_headers: [\"trace parent\"]\n", "output.propagate_headers[0]", "propagate_headers:", "printable ASCII"},
		{"label bounds on a binary model", "  ttl: 30m", "  ttl: 30m\n  min: -3", "labels.min", "min: -3", "bounds a regression's labels"},
		{"label min above max", "  ttl: 30m", "  ttl: 30m\n  min: 5\n  max: 1", "labels.min", "  min: 5", "above max"},
		{"label id bound too large", "  ttl: 30m", "  ttl: 30m\n  max_id_bytes: 100000", "labels.max_id_bytes", "max_id_bytes: 100000", "[1, 65536]"},
		{"negative parked bound", "  ttl: 30m", "  ttl: 30m\n  max_parked: -1", "labels.max_parked", "max_parked: -1", "at least 1"},
		{"threshold out of range", "  name: fraud", "  name: fraud\n  threshold: 1.5", "model.threshold", "threshold: 1.5", "must be in (0, 1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := edit(t, tc.old, tc.new)
			_, err := pipeline.ParseSpec(specFile, []byte(text))
			if err == nil {
				t.Fatal("accepted")
			}
			errs := spectest.Errors(t, err)
			var hit *pipeline.SpecError
			for _, e := range errs {
				if e.Field == tc.field {
					hit = e
				}
			}
			if hit == nil {
				t.Fatalf("no error names field %s: %v", tc.field, err)
			}
			if hit.File != specFile {
				t.Errorf("file %q, want %q", hit.File, specFile)
			}
			if want := spectest.LineOf(t, text, tc.at); hit.Line != want {
				t.Errorf("line %d, want %d (%q): %v", hit.Line, want, tc.at, hit)
			}
			if !strings.Contains(hit.Msg, tc.msg) {
				t.Errorf("message %q does not say %q", hit.Msg, tc.msg)
			}
			if want := specFile + ":"; !strings.HasPrefix(hit.Error(), want) || !strings.Contains(hit.Error(), tc.field+": ") {
				t.Errorf("Error() = %q does not start with the file and name the field", hit.Error())
			}
		})
	}
}

func TestSpecReportsEveryProblem(t *testing.T) {
	text := edit(t, "  predictions: predictions\n", "")
	text = strings.Replace(text, "{name: amount, type: float,", "{name: amount, type: decimal,", 1)
	text = strings.Replace(text, "  name: fraud\n", "  version: \"1\"\n", 1)
	_, err := pipeline.ParseSpec(specFile, []byte(text))
	got := map[string]bool{}
	for _, e := range spectest.Errors(t, err) {
		got[e.Field] = true
		if e.Line == 0 {
			t.Errorf("%v has no line", e)
		}
	}
	for _, f := range []string{"topics.predictions", "schema.fields[2].type", "model.name"} {
		if !got[f] {
			t.Errorf("no error for %s in %v", f, err)
		}
	}
}

func TestSpecSyntaxErrorNamesLine(t *testing.T) {
	text := edit(t, "  dlq: events.dlq", "  dlq: [events.dlq")
	_, err := pipeline.ParseSpec(specFile, []byte(text))
	errs := spectest.Errors(t, err)
	if len(errs) != 1 || errs[0].File != specFile || errs[0].Line == 0 {
		t.Fatalf("syntax error reported as %v", err)
	}
}

func TestLoadSpecMissingFile(t *testing.T) {
	_, err := pipeline.LoadSpec("testdata/does-not-exist.yaml")
	if err == nil || !strings.Contains(err.Error(), "does-not-exist.yaml") {
		t.Fatalf("LoadSpec of a missing file: %v", err)
	}
}

const minimalSpec = `name: tiny
topics: {input: in, predictions: out, dlq: dlq}
schema:
  id_field: id
  fields:
    - {name: id, type: string, required: true}
    - {name: x, type: float}
stages:
  featurize: {numeric: [x]}
model: {name: m}
`

func TestSpecDefaults(t *testing.T) {
	s, err := pipeline.ParseSpec("tiny.yaml", []byte(minimalSpec))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"batch.size", s.Batch.Size, pipeline.DefaultBatchSize},
		{"batch.linger", s.Batch.Linger.D(), pipeline.DefaultBatchLinger},
		{"batch.max_in_flight", s.Batch.MaxInFlight, pipeline.DefaultMaxInFlight},
		{"hash_bits", s.Stages.Featurize.HashBits, pipeline.DefaultHashBits},
		{"dedupe.ttl", s.Stages.Dedupe.TTL.D(), pipeline.DefaultDedupeTTL},
		{"dedupe on", s.Stages.Dedupe.On(), true},
		{"max_string_bytes", s.Schema.MaxStringBytes, pipeline.DefaultMaxStringBytes},
		{"session_timeout", s.Kafka.SessionTimeout.D(), pipeline.DefaultSessionTimeout},
		{"client_id", s.Kafka.ClientID, "driftline"},
		{"group", s.Kafka.Group, "driftline-tiny"},
		{"key_prefix", s.Redis.KeyPrefix, "driftline:tiny:"},
		{"model.version", s.Model.Version, "1"},
		{"model.kind", s.Model.Kind, "logistic"},
		{"dlq_payload without PII", s.Stages.Anonymize.DLQPayload, "raw"},
		{"labels.field", s.Labels.Field, "label"},
		{"labels.ttl", s.Labels.TTL.D(), pipeline.DefaultLabelTTL},
		{"labels.max_pending", s.Labels.MaxPending, pipeline.DefaultMaxPending},
		{"has PII", s.HasPII(), false},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	// Explicit values win over defaults, and PII makes the DLQ encrypted.
	s, err = pipeline.ParseSpec("base.yaml", []byte(baseSpec))
	if err != nil {
		t.Fatal(err)
	}
	if s.Stages.Anonymize.DLQPayload != "encrypt" || !s.HasPII() {
		t.Errorf("dlq_payload %q with PII, want encrypt", s.Stages.Anonymize.DLQPayload)
	}
	if s.Batch.Size != 256 || s.Labels.TTL.D() != 30*time.Minute || s.Stages.Dedupe.TTL.D() != time.Hour {
		t.Errorf("explicit values lost: batch %d, labels.ttl %s, dedupe.ttl %s", s.Batch.Size, s.Labels.TTL.D(), s.Stages.Dedupe.TTL.D())
	}
	off, err := pipeline.ParseSpec("off.yaml", []byte(strings.Replace(minimalSpec, "stages:\n", "stages:\n  dedupe: {enabled: false}\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if off.Stages.Dedupe.On() {
		t.Error("dedupe enabled: false still on")
	}
	entity, err := pipeline.ParseSpec("entity.yaml", []byte(strings.Replace(minimalSpec, "{numeric: [x]}", "{numeric: [x], entity: {field: id, mean_of: x}}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if entity.Stages.Featurize.Entity.TTL.D() != pipeline.DefaultEntityTTL {
		t.Errorf("entity ttl %s, want %s", entity.Stages.Featurize.Entity.TTL.D(), pipeline.DefaultEntityTTL)
	}
}

// A parsed spec marshals back to YAML that parses to the same spec.
func TestSpecRoundTrip(t *testing.T) {
	for name, text := range map[string]string{"base": baseSpec, "minimal": minimalSpec} {
		s1, err := pipeline.ParseSpec(name+".yaml", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		out1, err := yaml.Marshal(s1)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := pipeline.ParseSpec(name+"-again.yaml", out1)
		if err != nil {
			t.Fatalf("%s: the marshaled spec does not parse: %v\n%s", name, err, out1)
		}
		out2, err := yaml.Marshal(s2)
		if err != nil {
			t.Fatal(err)
		}
		if string(out1) != string(out2) {
			t.Errorf("%s: round trip changed the spec:\n%s\n---\n%s", name, out1, out2)
		}
		if s2.Kafka.SessionTimeout != s1.Kafka.SessionTimeout || s2.Batch.Linger != s1.Batch.Linger || len(s2.Schema.Fields) != len(s1.Schema.Fields) {
			t.Errorf("%s: round trip lost values", name)
		}
		if !strings.Contains(string(out1), "linger: ") || strings.Contains(string(out1), "linger: 5000000") {
			t.Errorf("%s: durations not written as strings:\n%s", name, out1)
		}
	}
}

// rolloutSpec is baseSpec with every topic, topics.audit and a full
// rollout block with gate and retrain.
// labelledSpec is baseSpec with a labels topic, as a rollout needs.
var labelledSpec = strings.Replace(baseSpec, "  dlq: events.dlq\n", "  dlq: events.dlq\n  labels: labels\n", 1)

var rolloutSpec = strings.Replace(baseSpec, "  dlq: events.dlq\n", "  dlq: events.dlq\n  labels: labels\n  alerts: alerts\n  audit: audit\n", 1) + `rollout:
  canary_percent: 10
  shadow_topic: preds-shadow
  watch_interval: 2s
  gate:
    min_samples: 500
    metric: logloss
    max_delta: 0.02
    confidence: 0.9
    failure_limit: 2
    consecutive_error_limit: 3
    steps: [10, 50, 100]
    bake_samples: 700
    block_on_open_drift: false
    interval: 250ms
  retrain:
    on_drift: false
    every: 1h
    mode: warm
    window: 5000
    min_rows: 100
    holdout: 0.3
    since_drift: false
`

// editIn replaces one exact occurrence of old in text.
func editIn(t *testing.T, text, old, new string) string {
	t.Helper()
	if strings.Count(text, old) != 1 {
		t.Fatalf("editIn: %q does not occur once", old)
	}
	return strings.Replace(text, old, new, 1)
}

func TestRolloutGateAndRetrainParse(t *testing.T) {
	s, err := pipeline.ParseSpec(specFile, []byte(rolloutSpec))
	if err != nil {
		t.Fatal(err)
	}
	if s.Topics.Audit != "audit" {
		t.Errorf("topics.audit = %q", s.Topics.Audit)
	}
	if !s.Rollout.Gate.IsSet() || s.Rollout.Retrain == nil {
		t.Fatalf("rollout %+v lost its gate or retrain block", s.Rollout)
	}
	r := s.Rollout.RetrainOrDefault()
	if r.OnDriftOrDefault() || r.Every.D() != time.Hour || r.Mode != pipeline.RetrainModeWarm || r.Window != 5000 ||
		r.MinRows != 100 || r.Holdout != 0.3 || r.SinceDriftOrDefault() {
		t.Errorf("retrain parsed as %+v", r)
	}
}

func TestRolloutGateAndRetrainDefaults(t *testing.T) {
	wantRetrain := func(t *testing.T, r pipeline.RetrainSpec) {
		t.Helper()
		if r.OnDrift == nil || !*r.OnDrift || r.Every != 0 || r.Mode != pipeline.RetrainModeReset ||
			r.Window != pipeline.DefaultRetrainWindow || r.MinRows != pipeline.DefaultRetrainMinRows ||
			r.Holdout != pipeline.DefaultRetrainHoldout || r.SinceDrift == nil || !*r.SinceDrift {
			t.Errorf("retrain %+v, want the defaults", r)
		}
	}
	t.Run("exported defaults", func(t *testing.T) {
		wantRetrain(t, pipeline.DefaultRetrainSpec())
	})
	t.Run("no rollout block", func(t *testing.T) {
		s, err := pipeline.ParseSpec(specFile, []byte(baseSpec))
		if err != nil {
			t.Fatal(err)
		}
		if s.Rollout != nil {
			t.Fatalf("rollout %+v", s.Rollout)
		}
		wantRetrain(t, s.Rollout.RetrainOrDefault())
	})
	t.Run("rollout without gate and retrain", func(t *testing.T) {
		s, err := pipeline.ParseSpec(specFile, []byte(labelledSpec+"rollout:\n  canary_percent: 5\n"))
		if err != nil {
			t.Fatal(err)
		}
		if s.Rollout.Gate.IsSet() || s.Rollout.Retrain != nil {
			t.Errorf("absent blocks parsed as %+v, %+v", s.Rollout.Gate, s.Rollout.Retrain)
		}
		wantRetrain(t, s.Rollout.RetrainOrDefault())
	})
	t.Run("empty blocks", func(t *testing.T) {
		s, err := pipeline.ParseSpec(specFile, []byte(labelledSpec+"rollout:\n  gate: {}\n  retrain: {}\n"))
		if err != nil {
			t.Fatal(err)
		}
		wantRetrain(t, s.Rollout.RetrainOrDefault())
	})
	t.Run("partial blocks", func(t *testing.T) {
		s, err := pipeline.ParseSpec(specFile, []byte(labelledSpec+"rollout:\n  gate: {min_samples: 50, metric: rmse, steps: []}\n  retrain: {every: 10m, min_rows: 0}\n"))
		if err != nil {
			t.Fatal(err)
		}
		r := s.Rollout.RetrainOrDefault()
		if r.Every.D() != 10*time.Minute {
			t.Errorf("retrain.every = %s, want 10m", r.Every.D())
		}
		r.Every = 0
		wantRetrain(t, r)
	})
	t.Run("explicit zeros that are not the default", func(t *testing.T) {
		s, err := pipeline.ParseSpec(specFile, []byte(labelledSpec+"rollout:\n  gate:\n    max_delta: 0\n    consecutive_error_limit: 0\n    failure_limit: 0\n    block_on_open_drift: false\n  retrain: {on_drift: false, since_drift: false, every: 0s}\n"))
		if err != nil {
			t.Fatal(err)
		}
		r := s.Rollout.RetrainOrDefault()
		if r.OnDriftOrDefault() || r.SinceDriftOrDefault() || r.Every != 0 {
			t.Errorf("explicit false lost: %+v", r)
		}
	})
}

func TestRolloutGateAndRetrainErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, new string
		field    string
		at       string // a substring of the line the error must name
		msg      string // a substring of the message
	}{
		{"every below 1s", "    every: 1h", "    every: 500ms", "rollout.retrain.every", "every: 500ms", "0 (off) or at least 1s"},
		{"negative every", "    every: 1h", "    every: -1h", "rollout.retrain.every", "every: -1h", "at least 1s"},
		{"unknown mode", "    mode: warm", "    mode: cold", "rollout.retrain.mode", "mode: cold", `unknown mode "cold" (want reset or warm)`},
		{"negative window", "    window: 5000", "    window: -1", "rollout.retrain.window", "window: -1", "must be at least 1"},
		{"min_rows above window", "    min_rows: 100", "    min_rows: 6000", "rollout.retrain.min_rows", "min_rows: 6000", "must be in 1..window (5000), got 6000"},
		{"min_rows above the default window", "    window: 5000\n", "", "rollout.retrain.min_rows", "", ""}, // min_rows set below
		{"negative min_rows", "    min_rows: 100", "    min_rows: -5", "rollout.retrain.min_rows", "min_rows: -5", "must be in 1..window"},
		{"holdout above 0.9", "    holdout: 0.3", "    holdout: 0.95", "rollout.retrain.holdout", "holdout: 0.95", "(0, 0.9], got 0.95"},
		{"negative holdout", "    holdout: 0.3", "    holdout: -0.1", "rollout.retrain.holdout", "holdout: -0.1", "(0, 0.9]"},
		{"unknown retrain key", "    holdout: 0.3", "    holdout: 0.3\n    schedule: daily", "rollout.retrain.schedule", "schedule: daily", `unknown key "schedule"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := editIn(t, rolloutSpec, tc.old, tc.new)
			if tc.name == "min_rows above the default window" {
				text = editIn(t, text, "    min_rows: 100", "    min_rows: 20001")
				tc.at, tc.msg = "min_rows: 20001", "must be in 1..window (20000), got 20001"
			}
			checkSpecError(t, text, tc.field, tc.at, tc.msg)
		})
	}
}

// retrainSourceSpec is rolloutSpec with rollout.retrain.source and lookback.
var retrainSourceSpec = strings.Replace(rolloutSpec, "    since_drift: false\n", "    since_drift: false\n    source: kafka\n    lookback: 30m\n", 1)

func TestRetrainSourceParse(t *testing.T) {
	s, err := pipeline.ParseSpec(specFile, []byte(retrainSourceSpec))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Rollout.Retrain; got.Source != pipeline.RetrainSourceKafka || got.Lookback.D() != 30*time.Minute {
		t.Errorf("parsed source %q lookback %s, want kafka 30m", got.Source, got.Lookback.D())
	}
	if r := s.Rollout.RetrainOrDefault(); r.Source != pipeline.RetrainSourceKafka || r.Lookback.D() != 30*time.Minute {
		t.Errorf("RetrainOrDefault source %q lookback %s, want kafka 30m", r.Source, r.Lookback.D())
	}
	// source window, and a lookback it ignores, are valid too.
	text := editIn(t, retrainSourceSpec, "    source: kafka", "    source: window")
	if s, err = pipeline.ParseSpec(specFile, []byte(text)); err != nil {
		t.Fatal(err)
	}
	if r := s.Rollout.RetrainOrDefault(); r.Source != pipeline.RetrainSourceWindow || r.Lookback.D() != 30*time.Minute {
		t.Errorf("source window: %q %s", r.Source, r.Lookback.D())
	}
}

func TestRetrainSourceDefaults(t *testing.T) {
	want := func(t *testing.T, r pipeline.RetrainSpec) {
		t.Helper()
		if r.Source != pipeline.RetrainSourceWindow || r.Lookback.D() != 15*time.Minute ||
			pipeline.DefaultRetrainSource != "window" || pipeline.DefaultRetrainLookback != 15*time.Minute {
			t.Errorf("source %q lookback %s, want window and 15m", r.Source, r.Lookback.D())
		}
	}
	want(t, pipeline.DefaultRetrainSpec())
	for _, text := range []string{
		rolloutSpec, // a retrain block without them
		labelledSpec + "rollout:\n  retrain: {source: \"\", lookback: 0s}\n",
		labelledSpec + "rollout:\n  canary_percent: 5\n",
	} {
		s, err := pipeline.ParseSpec(specFile, []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		if s.Rollout.Retrain != nil && (s.Rollout.Retrain.Source != "" || s.Rollout.Retrain.Lookback != 0) {
			t.Errorf("defaults written into the parsed retrain block: %+v", *s.Rollout.Retrain)
		}
		want(t, s.Rollout.RetrainOrDefault())
	}
}

func TestRetrainWarmup(t *testing.T) {
	for _, tc := range []struct {
		name, block string
		want        time.Duration
	}{
		{"absent: off", "    source: kafka\n", 0},
		{"set", "    source: kafka\n    warmup: 90s\n", 90 * time.Second},
		{"off", "    source: kafka\n    warmup: 0s\n", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := pipeline.ParseSpec(specFile, []byte(editIn(t, retrainSourceSpec, "    source: kafka\n", tc.block)))
			if err != nil {
				t.Fatal(err)
			}
			if r := s.Rollout.RetrainOrDefault(); r.Warmup.D() != tc.want {
				t.Errorf("warmup %s, want %s", r.Warmup.D(), tc.want)
			}
		})
	}
}

func TestRetrainSourceErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, new string
		field    string
		at, msg  string
	}{
		{"unknown source", "    source: kafka", "    source: pond", "rollout.retrain.source", "source: pond", `unknown source "pond" (want window, kafka or lake)`},
		{"lake without a lake block", "    source: kafka", "    source: lake", "rollout.retrain.source", "source: lake", "lake reads the live lake, but the spec has no lake block"},
		{"source not a string", "    source: kafka", "    source: [kafka]", "rollout.retrain.source", "source: [kafka]", "want a single value, got a list"},
		{"kafka without topics.labels", "  labels: labels\n", "", "rollout.retrain.source", "source: kafka", "topics.labels is not set"},
		{"lookback below 1s", "    lookback: 30m", "    lookback: 500ms", "rollout.retrain.lookback", "lookback: 500ms", "must be at least 1s (0 or absent: 15m0s), got 500ms"},
		{"negative lookback", "    lookback: 30m", "    lookback: -5m", "rollout.retrain.lookback", "lookback: -5m", "must be at least 1s"},
		{"bad lookback", "    lookback: 30m", "    lookback: recent", "rollout.retrain.lookback", "lookback: recent", "invalid duration"},
		{"negative warmup", "    lookback: 30m", "    lookback: 30m\n    warmup: -1m", "rollout.retrain.warmup", "warmup: -1m", "must not be negative (0s or absent: off), got -1m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkSpecError(t, editIn(t, retrainSourceSpec, tc.old, tc.new), tc.field, tc.at, tc.msg)
		})
	}
}

// checkSpecError parses text and checks that an error names field, on the
// line containing at, with a message containing msg.
func checkSpecError(t *testing.T, text, field, at, msg string) {
	t.Helper()
	spectest.CheckError(t, func(name string, data []byte) error {
		_, err := pipeline.ParseSpec(name, data)
		return err
	}, specFile, text, field, at, msg)
}

func TestRolloutShadowTopicMustDifferFromOtherTopics(t *testing.T) {
	for _, other := range []struct{ path, topic string }{
		{"topics.input", "events"},
		{"topics.predictions", "predictions"},
		{"topics.dlq", "events.dlq"},
		{"topics.labels", "labels"},
		{"topics.alerts", "alerts"},
	} {
		t.Run(other.path, func(t *testing.T) {
			text := editIn(t, rolloutSpec, "  shadow_topic: preds-shadow", "  shadow_topic: "+other.topic)
			checkSpecError(t, text, "rollout.shadow_topic", "  shadow_topic: ", "must differ from every other topic, but "+other.path+` is also "`+other.topic+`"`)
		})
	}
}

func TestTopicsAuditMustDifferFromOtherTopics(t *testing.T) {
	for _, other := range []struct{ path, line string }{
		{"topics.input", "  input: events"},
		{"topics.predictions", "  predictions: predictions"},
		{"topics.dlq", "  dlq: events.dlq"},
		{"topics.labels", "  labels: labels"},
		{"topics.alerts", "  alerts: alerts"},
		{"rollout.shadow_topic", "  shadow_topic: preds-shadow"},
	} {
		t.Run(other.path, func(t *testing.T) {
			topic := other.line[strings.Index(other.line, ": ")+2:]
			text := editIn(t, rolloutSpec, "  audit: audit", "  audit: "+topic)
			checkSpecError(t, text, "topics.audit", "  audit: ", "must differ from every other topic, but "+other.path+` is also "`+topic+`"`)
		})
	}
	// Without a rollout block the audit topic is checked against the topics.
	text := strings.Replace(baseSpec, "  dlq: events.dlq\n", "  dlq: events.dlq\n  audit: events\n", 1)
	checkSpecError(t, text, "topics.audit", "  audit: events", "topics.input")
	ok := strings.Replace(baseSpec, "  dlq: events.dlq\n", "  dlq: events.dlq\n  audit: driftline.audit\n", 1)
	if _, err := pipeline.ParseSpec(specFile, []byte(ok)); err != nil {
		t.Errorf("a distinct audit topic: %v", err)
	}
}

// The gate and retrain blocks survive a marshal and parse.
func TestRolloutSpecRoundTrip(t *testing.T) {
	s1, err := pipeline.ParseSpec(specFile, []byte(rolloutSpec))
	if err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(s1)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := pipeline.ParseSpec("again.yaml", out)
	if err != nil {
		t.Fatalf("the marshaled spec does not parse: %v\n%s", err, out)
	}
	r1, r2 := s1.Rollout.RetrainOrDefault(), s2.Rollout.RetrainOrDefault()
	var g1, g2 struct {
		MaxDelta float64 `yaml:"max_delta"`
		Steps    []int   `yaml:"steps"`
		Interval string  `yaml:"interval"`
	}
	if s1.Rollout.Gate.IsSet() {
		b1, _ := yaml.Marshal(s1.Rollout.Gate)
		b2, _ := yaml.Marshal(s2.Rollout.Gate)
		_ = yaml.Unmarshal(b1, &g1)
		_ = yaml.Unmarshal(b2, &g2)
	}
	if g1.MaxDelta != g2.MaxDelta || g1.Interval != g2.Interval || !slices.Equal(g1.Steps, g2.Steps) || g1.Interval != "250ms" ||
		r1.Every != r2.Every || r1.Mode != r2.Mode ||
		r1.SinceDriftOrDefault() != r2.SinceDriftOrDefault() || s2.Topics.Audit != s1.Topics.Audit {
		t.Errorf("round trip changed the rollout:\n%s", out)
	}
}

func TestKafkaExactlyOnce(t *testing.T) {
	s, err := pipeline.ParseSpec(specFile, []byte(baseSpec))
	if err != nil {
		t.Fatal(err)
	}
	if s.Kafka.ExactlyOnce || s.Kafka.TransactionalID != "" {
		t.Errorf("exactly-once is on by default: %+v", s.Kafka)
	}
	text := edit(t, "  session_timeout: 6s\n", "  session_timeout: 6s\n  exactly_once: true\n  transactional_id: payments-0\n")
	s, err = pipeline.ParseSpec(specFile, []byte(text))
	if err != nil {
		t.Fatalf("exactly_once with a transactional id: %v", err)
	}
	if !s.Kafka.ExactlyOnce || s.Kafka.TransactionalID != "payments-0" {
		t.Errorf("parsed %+v", s.Kafka)
	}
	// The id's default needs the host, so it is left to the process.
	text = edit(t, "  session_timeout: 6s\n", "  session_timeout: 6s\n  exactly_once: true\n")
	if s, err = pipeline.ParseSpec(specFile, []byte(text)); err != nil || s.Kafka.TransactionalID != "" {
		t.Errorf("exactly_once alone: %v, transactional id %q", err, s.Kafka.TransactionalID)
	}

	text = edit(t, "  session_timeout: 6s\n", "  session_timeout: 6s\n  transactional_id: payments-0\n")
	checkSpecError(t, text, "kafka.transactional_id", "transactional_id:", "applies to exactly_once: true only")
	text = edit(t, "  session_timeout: 6s\n", "  session_timeout: 6s\n  exactly_once: true\n  transactional_id: \"payments 0\"\n")
	checkSpecError(t, text, "kafka.transactional_id", "transactional_id:", "must not contain spaces")
	text = edit(t, "  session_timeout: 6s\n", "  session_timeout: 6s\n  exactly_once: yes please\n")
	checkSpecError(t, text, "kafka.exactly_once", "exactly_once:", "is not true or false")
}

// securedSpec reaches a secured Kafka (TLS, SCRAM) and a Redis Cluster (ACL
// user, TLS, hash tag); every secret comes from an env var or a file.
var securedSpec = strings.Replace(baseSpec, "  session_timeout: 6s\n", `  session_timeout: 6s
  compression: lz4
  tls:
    ca_file: /etc/driftline/kafka-ca.pem
  sasl:
    mechanism: SCRAM-SHA-512
    username: driftline
    password_env: KAFKA_PASSWORD
redis:
  mode: cluster
  addrs: [redis-0:6379, redis-1:6379]
  username: app
  password_file: /run/secrets/redis-password
  hash_tag: true
  tls:
    ca_file: /etc/driftline/redis-ca.pem
    cert_file: /etc/driftline/redis-client.pem
    key_file: /etc/driftline/redis-client-key.pem
`, 1)

func TestSecuredSpecParses(t *testing.T) {
	s, err := pipeline.ParseSpec(specFile, []byte(securedSpec))
	if err != nil {
		t.Fatalf("secured spec: %v", err)
	}
	if s.Kafka.SASL == nil || s.Kafka.SASL.PasswordRef() != (pipeline.SecretRef{Env: "KAFKA_PASSWORD"}) || s.Kafka.TLS.CAFile != "/etc/driftline/kafka-ca.pem" || s.Kafka.Compression != "lz4" {
		t.Errorf("kafka = %+v", s.Kafka)
	}
	r := s.Redis
	if r.Mode != pipeline.RedisCluster || len(r.Addrs) != 2 || r.PasswordRef() != (pipeline.SecretRef{File: "/run/secrets/redis-password"}) || !r.HashTag || r.TLS.KeyFile == "" {
		t.Errorf("redis = %+v", r)
	}
	for _, sa := range []string{
		"    mechanism: OAUTHBEARER\n    token_file: /run/secrets/kafka-token\n",
		"    mechanism: PLAIN\n    username: driftline\n    password_file: /run/secrets/kafka-password\n",
		"    mechanism: SCRAM-SHA-256\n    username: driftline\n    password_env: KAFKA_PASSWORD\n",
	} {
		text := editIn(t, securedSpec, "    mechanism: SCRAM-SHA-512\n    username: driftline\n    password_env: KAFKA_PASSWORD\n", sa)
		if _, err := pipeline.ParseSpec(specFile, []byte(text)); err != nil {
			t.Errorf("sasl block %q: %v", sa, err)
		}
	}
	for _, redis := range []string{
		"redis:\n  mode: sentinel\n  addrs: [sentinel-0:26379]\n  master_name: primary\n  password_env: REDIS_PASSWORD\n  db: 2\n",
		"redis:\n  addr: redis:6379\n  password_env: REDIS_PASSWORD\n",
		"redis:\n  addrs: [redis:6379]\n",
	} {
		text := editIn(t, securedSpec, securedSpec[strings.Index(securedSpec, "redis:\n"):strings.Index(securedSpec, "batch:\n")], redis)
		if _, err := pipeline.ParseSpec(specFile, []byte(text)); err != nil {
			t.Errorf("redis block %q: %v", redis, err)
		}
	}
}

func TestSecuredSpecErrors(t *testing.T) {
	const scram = "    mechanism: SCRAM-SHA-512\n    username: driftline\n    password_env: KAFKA_PASSWORD\n"
	for _, tc := range []struct {
		name, old, new, field, at, msg string
	}{
		{"plain-text redis password", "  password_file: /run/secrets/redis-password", "  password: hunter2", "redis.password", "password: hunter2", "never written in the spec: set redis.password_env (an environment variable) or redis.password_file"},
		{"plain-text sasl password", "    password_env: KAFKA_PASSWORD", "    password: hunter2", "kafka.sasl.password", "password: hunter2", "set kafka.sasl.password_env"},
		{"sasl without a password", "    password_env: KAFKA_PASSWORD\n", "", "kafka.sasl.password_env", "  sasl:", "mechanism SCRAM-SHA-512 needs a password: set password_env"},
		{"sasl with two passwords", "    password_env: KAFKA_PASSWORD", "    password_env: KAFKA_PASSWORD\n    password_file: /run/pw", "kafka.sasl.password_env", "password_env: KAFKA_PASSWORD", "not both"},
		{"sasl without a username", "    username: driftline\n    password_env", "    password_env", "kafka.sasl.username", "  sasl:", "is required with mechanism SCRAM-SHA-512"},
		{"unknown mechanism", "    mechanism: SCRAM-SHA-512", "    mechanism: scram-sha-512", "kafka.sasl.mechanism", "mechanism: scram", `unknown mechanism "scram-sha-512"`},
		{"no mechanism", "    mechanism: SCRAM-SHA-512\n", "", "kafka.sasl.mechanism", "  sasl:", "is required"},
		{"token file with scram", "    password_env: KAFKA_PASSWORD", "    password_env: KAFKA_PASSWORD\n    token_file: /run/token", "kafka.sasl.token_file", "token_file:", "OAUTHBEARER only"},
		{"oauthbearer without a token file", scram, "    mechanism: OAUTHBEARER\n", "kafka.sasl.token_file", "  sasl:", "is required with mechanism OAUTHBEARER"},
		{"oauthbearer with a password", scram, "    mechanism: OAUTHBEARER\n    token_file: /run/token\n    password_env: X\n", "kafka.sasl.username", "  sasl:", "apply to PLAIN and SCRAM only"},
		{"kafka cert without key", "    ca_file: /etc/driftline/kafka-ca.pem", "    ca_file: /etc/driftline/kafka-ca.pem\n    cert_file: /etc/c.pem", "kafka.tls.cert_file", "cert_file: /etc/c.pem", "go together"},
		{"redis cert without key", "    key_file: /etc/driftline/redis-client-key.pem\n", "", "redis.tls.cert_file", "cert_file: /etc/driftline/redis-client.pem", "go together"},
		{"unknown codec", "  compression: lz4", "  compression: brotli", "kafka.compression", "compression: brotli", `unknown codec "brotli" (want snappy, lz4, zstd, gzip or none)`},
		{"unknown redis mode", "  mode: cluster", "  mode: replicated", "redis.mode", "mode: replicated", `unknown mode "replicated"`},
		{"cluster db", "  hash_tag: true", "  hash_tag: true\n  db: 3", "redis.db", "db: 3", "must be 0 with mode cluster"},
		{"negative db", "  mode: cluster\n", "", "redis.db", "db: -1", "must not be negative"},
		{"cluster without hash tag", "  hash_tag: true\n", "", "redis.hash_tag", "redis:", "must be true with mode cluster"},
		{"master name outside sentinel", "  mode: cluster", "  mode: cluster\n  master_name: primary", "redis.master_name", "master_name: primary", "sentinel only"},
		{"sentinel without master name", "  mode: cluster", "  mode: sentinel", "redis.master_name", "redis:", "is required with mode sentinel"},
		{"standalone with two addrs", "  mode: cluster\n", "", "redis.addrs", "addrs: [redis-0", "mode standalone takes one address, got 2"},
		{"addr and addrs", "  mode: cluster", "  mode: cluster\n  addr: redis:6379", "redis.addrs", "addrs: [redis-0", "not both"},
		{"user without password", "  password_file: /run/secrets/redis-password\n", "", "redis.username", "  username: app", "needs a password: set redis.password_env or redis.password_file"},
		{"two redis passwords", "  password_file: /run/secrets/redis-password", "  password_file: /run/secrets/redis-password\n  password_env: REDIS_PASSWORD", "redis.password_env", "password_env: REDIS_PASSWORD", "not both"},
		{"braces in a hash-tagged prefix", "  hash_tag: true", "  hash_tag: true\n  key_prefix: \"{app}:\"", "redis.key_prefix", "key_prefix:", "must not contain { or }"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := editIn(t, securedSpec, tc.old, tc.new)
			if tc.name == "negative db" {
				text = editIn(t, text, "  hash_tag: true", "  hash_tag: true\n  db: -1")
				text = editIn(t, text, "  addrs: [redis-0:6379, redis-1:6379]", "  addrs: [redis-0:6379]")
			}
			checkSpecError(t, text, tc.field, tc.at, tc.msg)
		})
	}
}

// TestSecuredSpecErrorsNeverHoldTheSecret writes a plain-text password: the
// error says where secrets go, and does not repeat the value.
func TestSecuredSpecErrorsNeverHoldTheSecret(t *testing.T) {
	text := editIn(t, securedSpec, "  password_file: /run/secrets/redis-password", "  password: s3cr3t-value-41")
	text = editIn(t, text, "    password_env: KAFKA_PASSWORD", "    password: s3cr3t-value-42")
	_, err := pipeline.ParseSpec(specFile, []byte(text))
	if err == nil {
		t.Fatal("accepted plain-text passwords")
	}
	if strings.Contains(err.Error(), "s3cr3t-value") {
		t.Fatalf("error %q repeats a password", err)
	}
}

// Positions come from the YAML nodes and the parser's structured errors:
// a syntax error names its line, a repeated key both of its lines, an
// empty file says so, and a rollout needs a labels topic.
func TestSpecYAMLPositions(t *testing.T) {
	text := editIn(t, baseSpec, "  linger: 2ms\n", "  linger: 2ms\n  size: [oops\n")
	_, err := pipeline.ParseSpec("syntax.yaml", []byte(text))
	errs := spectest.Errors(t, err)
	if len(errs) != 1 || errs[0].Line < spectest.LineOf(t, text, "size: [oops") || !strings.HasPrefix(errs[0].Msg, "YAML syntax: ") {
		t.Fatalf("syntax error %v, want one YAML syntax error at or after the line of the open list", err)
	}
	checkSpecError(t, editIn(t, baseSpec, "  linger: 2ms\n", "  linger: 2ms\n  linger: 3ms\n"), "batch.linger", "linger: 3ms", "appears twice (first on line")
	for _, empty := range []string{"", "\n\n", "# only a comment\n"} {
		_, err := pipeline.ParseSpec("empty.yaml", []byte(empty))
		if err == nil || !strings.Contains(err.Error(), "empty.yaml: the spec is empty") {
			t.Errorf("empty spec %q: %v", empty, err)
		}
	}
	checkSpecError(t, editIn(t, rolloutSpec, "  labels: labels\n", ""), "rollout", "rollout:", "needs topics.labels")
}

// JoinSorted orders a file's problems by line, unlined ones last.
func TestJoinSortedOrdersByLine(t *testing.T) {
	err := pipeline.JoinSorted(
		errors.Join(&pipeline.SpecError{File: "f", Line: 9, Msg: "c"}, &pipeline.SpecError{File: "f", Msg: "z"}),
		&pipeline.SpecError{File: "f", Line: 2, Msg: "a"}, nil)
	if got := err.Error(); got != "f:2: a\nf:9: c\nf: z" {
		t.Fatalf("sorted: %q", got)
	}
}
