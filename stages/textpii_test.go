package stages

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftline/driftline/pipeline"
)

const textSpecYAML = `name: text
topics: {input: events, predictions: predictions, dlq: events.dlq}
schema:
  id_field: id
  fields:
    - {name: id, type: string, required: true}
    - {name: red, type: string}
    - {name: masked, type: string}
    - {name: pseudo, type: string}
    - {name: enc, type: string}
    - {name: email, type: string, pii: email}
stages:
  dedupe: {enabled: false}
  anonymize:
    hmac_key_env: UNIT_HMAC_KEY
    encryption_key_env: UNIT_AES_KEY
    encryption_key_id: unit-key-1
    fields: [{field: email, op: pseudonymize}]
  text:
    pii:
      - {field: red, action: redact}
      - {field: masked, action: mask, keep_last: 2, types: [phone, payment_card]}
      - {field: pseudo, action: pseudonymize, custom: [{name: order_ref, pattern: 'ORD-\d{6}'}]}
      - {field: enc, action: encrypt}
    tokens: [{field: red, max_tokens: 6}]
  featurize: {categorical: [], hash_bits: 12}
model: {name: m}
`

func textSpec(t testing.TB) *pipeline.Spec {
	t.Helper()
	spec, err := pipeline.ParseSpec("text.yaml", []byte(textSpecYAML))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func TestTextPIIActions(t *testing.T) {
	spec := textSpec(t)
	reg := prometheus.NewPedanticRegistry()
	m, err := NewTextPIIMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	keys := testKeys()
	tp, err := NewTextPII(spec, keys, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	an, err := NewAnonymize(spec, keys)
	if err != nil {
		t.Fatal(err)
	}
	rows := [][]byte{
		[]byte(`{"id":"a","red":"mail bob@example.com or call 13812345678, 我的身份证号11010519491231002X。","masked":"card 4111 1111 1111 1111, mail bob@example.com","pseudo":"call +86 138 1234 5678 about ORD-123456","enc":"IBAN GB82 WEST 1234 5698 7654 32 thanks","email":"8613812345678"}`),
		[]byte(`{"id":"b","red":"nothing here, order 4111111111111112","pseudo":"+8613812345678","enc":"from 10.0.0.1"}`),
	}
	b := newBatch(0, rows...)
	mustProcess(t, b, NewDecode(spec), NewValidate(spec), tp, an)
	get := func(field string, i int) string { return colString(t, b, spec, field, i) }
	if got, want := get("red", 0), "mail [EMAIL] or call [PHONE], 我的身份证号[CN_RESIDENT_ID]。"; got != want {
		t.Errorf("redact: %q, want %q", got, want)
	}
	if got, want := get("red", 1), "nothing here, order 4111111111111112"; got != want {
		t.Errorf("a row without PII changed: %q", got)
	}
	if got, want := get("masked", 0), "card *****************11, mail bob@example.com"; got != want {
		t.Errorf("mask (phone and card only): %q, want %q", got, want)
	}
	// Pseudonyms of one number in two formats are equal, and equal the
	// anonymize stage's token of the same normalized value.
	p0, p1 := get("pseudo", 0), get("pseudo", 1)
	tok := get("email", 0)
	if !strings.HasPrefix(tok, TokenPrefix) || p1 != tok || p0 != "call "+tok+" about "+p0[len("call "+tok+" about "):] {
		t.Errorf("pseudonymize: %q and %q, structured token %q", p0, p1, tok)
	}
	if strings.Contains(p0, "ORD-") || !strings.Contains(p0, TokenPrefix) {
		t.Errorf("the custom recognizer's match was not pseudonymized: %q", p0)
	}
	enc := get("enc", 0)
	if !strings.HasPrefix(enc, "IBAN [IBAN:") || !strings.HasSuffix(enc, "] thanks") {
		t.Fatalf("encrypt: %q", enc)
	}
	ct := strings.TrimSuffix(strings.TrimPrefix(enc, "IBAN [IBAN:"), "] thanks")
	plain, err := Decrypt(keys.AES, ct, []byte("enc"))
	if err != nil || string(plain) != "GB82 WEST 1234 5698 7654 32" {
		t.Errorf("decrypt: %q, %v", plain, err)
	}
	for _, c := range []struct {
		field, typ string
		want       float64
	}{{"red", "email", 1}, {"red", "phone", 1}, {"red", "cn_resident_id", 1}, {"red", "payment_card", 0}, {"masked", "payment_card", 1}, {"pseudo", "phone", 2}, {"pseudo", "order_ref", 1}, {"enc", "iban", 1}, {"enc", "ip_address", 1}} {
		if got := testutil.ToFloat64(m.findings.WithLabelValues(c.field, c.typ)); got != c.want {
			t.Errorf("findings{%s,%s} = %v, want %v", c.field, c.typ, got, c.want)
		}
	}
	if probs, err := testutil.CollectAndLint(m.findings); err != nil || len(probs) > 0 {
		t.Errorf("lint: %v %v", probs, err)
	}
	// No finding's text reaches a metric.
	out, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range out {
		// (The phone numbers whole: a metric's created_timestamp nanos are
		// digits, which held "138" in about one run in five.)
		if s := mf.String(); strings.Contains(s, "example.com") || strings.Contains(s, "13812345678") || strings.Contains(s, "138 1234") {
			t.Errorf("a metric holds PII: %s", s)
		}
	}
}

func TestTextTokensFeatures(t *testing.T) {
	spec := textSpec(t)
	fz, err := NewFeaturize(spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fz.NumHashed() != 6 {
		t.Fatalf("NumHashed %d, want 6", fz.NumHashed())
	}
	b := newBatch(0, []byte(`{"id":"a","red":"Refund, please: 退款"}`), []byte(`{"id":"b","red":"REFUND please"}`), []byte(`{"id":"c"}`))
	mustProcess(t, b, NewDecode(spec), NewValidate(spec), fz)
	h := b.Features.Hashed
	row := func(i int) []int32 { return h[i*6 : (i+1)*6] }
	a, c, null := row(0), row(1), row(2)
	if a[0] != c[0] || a[1] != c[1] || a[0] == a[1] || a[2] < 0 || a[3] < 0 || a[4] != -1 || c[2] != -1 {
		t.Errorf("words: %v and %v: want refund and please shared, two Han characters, then -1", a, c)
	}
	for _, v := range null {
		if v != -1 {
			t.Errorf("null text: %v, want all -1", null)
		}
	}
	if _, hashed := FeatureNames(spec); len(hashed) != 6 || hashed[0] != "red.token0" {
		t.Errorf("feature names %v", hashed)
	}
}

// BenchmarkTextPIINoFinding is the steady state of batches without
// personal data: no allocation per row (nor per batch).
func BenchmarkTextPIINoFinding(b *testing.B) {
	spec := textSpec(b)
	tp, err := NewTextPII(spec, testKeys(), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	rows := make([][]byte, 512)
	for i := range rows {
		rows[i] = []byte(`{"id":"x","red":"Hi, the blue jacket I ordered on 2024-03-15 has not arrived. 我的外套还没有到，请帮我查一下。","pseudo":"order 4111111111111112 for 1,299.00"}`)
	}
	batch := newBatch(0, rows...)
	mustProcess(b, batch, NewDecode(spec), NewValidate(spec))
	b.ReportAllocs()
	for b.Loop() {
		if err := tp.Process(b.Context(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/row")
}

func TestTextPIINoFindingAllocatesNothing(t *testing.T) {
	spec := textSpec(t)
	tp, err := NewTextPII(spec, testKeys(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rows := make([][]byte, 64)
	for i := range rows {
		rows[i] = []byte(`{"id":"x","red":"nothing to see, order 4111111111111112","enc":"version 1.2.3 at 12:30:45"}`)
	}
	batch := newBatch(0, rows...)
	mustProcess(t, batch, NewDecode(spec), NewValidate(spec), tp)
	if n := testing.AllocsPerRun(20, func() { _ = tp.Process(t.Context(), batch) }); n != 0 {
		t.Fatalf("%v allocations per batch of %d rows without findings", n, len(rows))
	}
}

// BenchmarkTextPIICorpus runs the text PII stage (scan, redact, new
// column) over the 2,400 lines of the labelled corpus as one batch; the
// Presidio comparison (scripts/bench-pii-presidio.sh) reads its ns/op.
func BenchmarkTextPIICorpus(b *testing.B) {
	spec := textSpec(b)
	tp, err := NewTextPII(spec, testKeys(), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	data, err := os.ReadFile("textpii/testdata/corpus.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	var rows [][]byte
	for line := range bytes.Lines(data) {
		var l struct{ Text string }
		if err := json.Unmarshal(line, &l); err != nil {
			b.Fatal(err)
		}
		row, _ := json.Marshal(map[string]string{"id": "x", "red": l.Text})
		rows = append(rows, row)
	}
	batch := newBatch(0, rows...)
	mustProcess(b, batch, NewDecode(spec), NewValidate(spec))
	orig := batch.Record
	b.ReportAllocs()
	for b.Loop() {
		orig.Retain()
		batch.Record = orig
		if err := tp.Process(b.Context(), batch); err != nil {
			b.Fatal(err)
		}
		batch.Record.Release()
	}
	b.ReportMetric(float64(len(rows)), "lines/op")
}
