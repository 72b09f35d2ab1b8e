package stages

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/streams"
)

// testSpecYAML is the demo's spec with three extra optional fields (an int
// with a range, a bool, a float with a range) so every field type and rule
// is covered. ENTITY is replaced by the entity block or nothing.
const testSpecYAML = `name: unit
topics: {input: events, predictions: predictions, dlq: events.dlq, labels: labels}
schema:
  id_field: event_id
  time_field: ts
  max_string_bytes: 64
  fields:
    - {name: event_id, type: string, required: true}
    - {name: ts, type: timestamp, required: true}
    - {name: user_id, type: string, required: true, pii: identifier}
    - {name: email, type: string, pii: email}
    - {name: phone, type: string, pii: phone}
    - {name: country, type: string, required: true, enum: [US, GB, DE, FR, IN, BR, JP, CA]}
    - {name: device, type: string, required: true, enum: [ios, android, web]}
    - {name: channel, type: string, required: true, enum: [organic, paid, referral, email]}
    - {name: f0, type: float, required: true}
    - {name: f1, type: float, required: true}
    - {name: f2, type: float, required: true}
    - {name: f3, type: float, required: true}
    - {name: f4, type: float, required: true}
    - {name: f5, type: float, required: true}
    - {name: f6, type: float, required: true}
    - {name: f7, type: float, required: true}
    - {name: f8, type: float, required: true}
    - {name: f9, type: float, required: true}
    - {name: n, type: int, min: 0, max: 100}
    - {name: flag, type: bool}
    - {name: amount, type: float, min: -10, max: 10.5}
stages:
  dedupe: {ttl: 1h}
  anonymize:
    hmac_key_env: UNIT_HMAC_KEY
    encryption_key_env: UNIT_AES_KEY
    encryption_key_id: unit-key-1
    fields:
      - {field: user_id, op: pseudonymize}
      - {field: email, op: encrypt}
      - {field: phone, op: mask, keep_last: 4}
  featurize:
    numeric: [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, n, flag]
    categorical: [country, device, channel]
    hash_bits: 16
ENTITY
model: {name: unit-logistic, version: "7", kind: logistic, optimizer: sgd, learn_rate: 0.5}
output:
  passthrough: [user_id, email, phone, country]
labels: {field: label, ttl: 10m, max_pending: 1000}
`

const entityYAML = `    entity: {field: user_id, mean_of: f0, ttl: 2h}`

// testSpec parses the unit spec; with entity the featurize stage keeps
// per-user aggregates.
func testSpec(t testing.TB, entity bool) *pipeline.Spec {
	t.Helper()
	return parseTestSpec(t, entity, nil)
}

// parseTestSpec parses the unit spec after applying edits (old → new).
func parseTestSpec(t testing.TB, entity bool, edits map[string]string) *pipeline.Spec {
	t.Helper()
	y := testSpecYAML
	if entity {
		y = strings.Replace(y, "ENTITY", entityYAML, 1)
	} else {
		y = strings.Replace(y, "ENTITY\n", "", 1)
	}
	for old, nw := range edits {
		if !strings.Contains(y, old) {
			t.Fatalf("spec edit: %q not in spec", old)
		}
		y = strings.Replace(y, old, nw, 1)
	}
	spec, err := pipeline.ParseSpec("unit.yaml", []byte(y))
	if err != nil {
		t.Fatalf("parse spec: %v", err)
	}
	return spec
}

// testKeys are fixed keys for the anonymize stage.
func testKeys() Keys {
	return Keys{
		HMAC:     []byte("unit-test-hmac-key"),
		AES:      bytes.Repeat([]byte{0x42}, 32),
		AESKeyID: "unit-key-1",
	}
}

// newBatch builds a batch of rows at offsets base, base+1, … of
// events/partition 3.
func newBatch(base int64, rows ...[]byte) *pipeline.Batch {
	msgs := make([]pipeline.Message, len(rows))
	for i, r := range rows {
		msgs[i] = pipeline.Message{
			Topic: "events", Partition: 3, Offset: base + int64(i), Value: r,
			Key:       []byte("k"),
			Timestamp: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		}
	}
	b := &pipeline.Batch{}
	b.Reset(msgs)
	return b
}

// genEvents returns n events of a seeded SEA stream and their JSON.
func genEvents(t testing.TB, seed uint64, n, users int) ([]streams.Event, [][]byte) {
	t.Helper()
	g, err := streams.NewGenerator(streams.Config{Concept: streams.ConceptSEA, Seed: seed, Users: users})
	if err != nil {
		t.Fatalf("generator: %v", err)
	}
	evs := make([]streams.Event, n)
	rows := make([][]byte, n)
	for i := range evs {
		g.Next(&evs[i])
		rows[i] = streams.AppendJSON(nil, &evs[i])
	}
	return evs, rows
}

// mustProcess runs stages in order on b, failing the test on a batch error.
func mustProcess(t testing.TB, b *pipeline.Batch, st ...pipeline.Stage) {
	t.Helper()
	for _, s := range st {
		if err := s.Process(context.Background(), b); err != nil {
			t.Fatalf("%s: %v", s.Name(), err)
		}
	}
}

// startRedis starts miniredis and returns it with a client.
func startRedis(t testing.TB) (*redistest.Redis, redis.UniversalClient) {
	t.Helper()
	r := redistest.StartMiniredis(t)
	c := r.Client(t)
	return r, c
}

// colString returns row i of a string column, "<null>" when null.
func colString(t testing.TB, b *pipeline.Batch, spec *pipeline.Spec, field string, i int) string {
	t.Helper()
	col := b.Record.Column(spec.FieldIndex(field))
	if col.IsNull(i) {
		return "<null>"
	}
	return col.ValueStr(i)
}
