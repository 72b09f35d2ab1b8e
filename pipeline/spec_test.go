package pipeline_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/driftline/driftline/pipeline"
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

// lineOf is the 1-based line of the first line of text containing s.
func lineOf(t *testing.T, text, s string) int {
	t.Helper()
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	t.Fatalf("lineOf: %q not in spec", s)
	return 0
}

// specErrors flattens a joined error into its *SpecErrors, failing on any
// other kind of error.
func specErrors(t *testing.T, err error) []*pipeline.SpecError {
	t.Helper()
	var out []*pipeline.SpecError
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var se *pipeline.SpecError
		if !errors.As(err, &se) {
			t.Errorf("error %v (%T) is not a *SpecError", err, err)
			return
		}
		out = append(out, se)
	}
	walk(err)
	return out
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
		{"wrong type", "  size: 256", "  size: lots", "batch.size", "size: lots", "cannot unmarshal"},
		{"wrong type in a flow item", "{name: ts, type: timestamp, required: true}", "{name: ts, type: timestamp, required: maybe}", "schema.fields[1].required", "required: maybe", "into bool"},
		{"long wrong value", "  size: 256", "  size: a-very-long-non-number", "batch.size", "a-very-long", "cannot unmarshal"},
		{"list for a string", "  input: events", "  input: [a, b]", "topics.input", "input: [a, b]", "!!seq"},
		{"unknown field type", "{name: amount, type: float,", "{name: amount, type: decimal,", "schema.fields[2].type", "decimal", `unknown type "decimal"`},
		{"enum on a float", "{name: amount, type: float, required: true, min: 0, max: 100000}", "{name: amount, type: float, required: true, enum: [a, b]}", "schema.fields[2].enum", "enum: [a, b]", "enum applies to string fields only"},
		{"range on a string", "{name: country, type: string, enum: [US, GB]}", "{name: country, type: string, min: 1}", "schema.fields[3].min", "min: 1", "range applies"},
		{"min above max", "min: 0, max: 100000", "min: 5, max: 1", "schema.fields[2].min", "min: 5", "above max"},
		{"id field missing from fields", "  id_field: event_id", "  id_field: txn_id", "schema.id_field", "id_field: txn_id", `"txn_id", which is not in schema.fields`},
		{"id field not required", "{name: event_id, type: string, required: true}", "{name: event_id, type: string}", "schema.id_field", "id_field:", "must be required"},
		{"time field wrong type", "  time_field: ts", "  time_field: amount", "schema.time_field", "time_field: amount", "has type float"},
		{"PII without an operator", "      - {field: card, op: pseudonymize}\n", "      - {field: country, op: mask}\n", "schema.fields[4].pii", "pii: card_number", "no operator"},
		{"unknown operator", "op: pseudonymize", "op: shred", "stages.anonymize.fields[0].op", "op: shred", `unknown operator "shred"`},
		{"pseudonymize without a key", "    hmac_key_env: HMAC_KEY\n", "", "stages.anonymize.hmac_key_env", "  anonymize:", "needs a key"},
		{"dlq_payload encrypt without a key", "    encryption_key_env: AES_KEY\n", "    dlq_payload: encrypt\n", "stages.anonymize.encryption_key_env", "  anonymize:", "need a key"},
		{"encrypt without a key id", "    encryption_key_id: k1\n", "", "stages.anonymize.encryption_key_id", "  anonymize:", "key id"},
		{"unknown dlq_payload", "    encryption_key_id: k1\n", "    encryption_key_id: k1\n    dlq_payload: plain\n", "stages.anonymize.dlq_payload", "dlq_payload: plain", `unknown value "plain"`},
		{"featurize unknown field", "    numeric: [amount]", "    numeric: [amount, nope]", "stages.featurize.numeric[1]", "numeric: [amount, nope]", `"nope"`},
		{"hash bits out of range", "    categorical: [country]\n", "    categorical: [country]\n    hash_bits: 40\n", "stages.featurize.hash_bits", "hash_bits: 40", "[1, 24]"},
		{"bad duration", "  session_timeout: 6s", "  session_timeout: 6 seconds", "kafka.session_timeout", "session_timeout:", "invalid duration `6 seconds`"},
		{"bad nested duration", "    ttl: 1h", "    ttl: forever", "stages.dedupe.ttl", "ttl: forever", "invalid duration"},
		{"duration as a list", "  ttl: 30m", "  ttl: [30m]", "labels.ttl", "ttl: [30m]", "into a duration"},
		{"missing model name", "  name: fraud", "  version: \"2\"", "model.name", "model:", "is required"},
		{"unknown model kind", "  name: fraud", "  name: fraud\n  kind: forest", "model.kind", "kind: forest", `unknown kind "forest"`},
		{"l1 without ftrl", "  name: fraud", "  name: fraud\n  l1: 0.1", "model.l1", "l1: 0.1", "needs optimizer ftrl"},
		{"batch size too big", "  size: 256", "  size: 2000000", "batch.size", "size: 2000000", "must be in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := edit(t, tc.old, tc.new)
			_, err := pipeline.ParseSpec(specFile, []byte(text))
			if err == nil {
				t.Fatal("accepted")
			}
			errs := specErrors(t, err)
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
			if want := lineOf(t, text, tc.at); hit.Line != want {
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
	for _, e := range specErrors(t, err) {
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
	errs := specErrors(t, err)
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
