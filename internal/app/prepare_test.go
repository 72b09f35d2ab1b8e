package app_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/driftline/driftline/internal/app"
)

// Prepare runs the preparation chain over a file: accepted rows with
// their anonymized fields and features, DLQ reasons, duplicates, and the
// free-text PII stage's findings, in input order.
func TestPrepare(t *testing.T) {
	spec, err := app.ParseSpec("prepare.yaml", []byte(`name: prep
topics: {input: in, predictions: out, dlq: dlq}
schema:
  id_field: id
  fields:
    - {name: id, type: string, required: true}
    - {name: msg, type: string, required: true}
    - {name: amount, type: float, min: 0}
stages:
  anonymize: {hmac_key_env: PREP_TEST_HMAC, dlq_payload: raw}
  text:
    pii: [{field: msg, action: pseudonymize}]
    tokens: [{field: msg, max_tokens: 4}]
  featurize: {numeric: [amount]}
model: {name: m}
`))
	if err != nil {
		t.Fatal(err)
	}
	os.Unsetenv("PREP_TEST_HMAC")
	in := strings.NewReader(`{"id":"a","msg":"call me on 13812345678","amount":3}
{"id":"b","msg":"fine","amount":-1}

{"id":"a","msg":"again","amount":1}
{"id":"c"}
`)
	var rows []app.PreparedRow
	st, err := app.Prepare(context.Background(), spec, in, func(r app.PreparedRow) error { rows = append(rows, r); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || st.Rows != 4 || st.OK != 1 || st.DLQ != 2 || st.Duplicates != 1 {
		t.Fatalf("stats %+v, rows %v", st, rows)
	}
	msg, _ := rows[0].Fields["msg"].(string)
	if rows[0].Line != 1 || !strings.HasPrefix(msg, "call me on tok_") || rows[0].Dense["amount"] == nil || *rows[0].Dense["amount"] != 3 || len(rows[0].Hashed) != 4 {
		t.Errorf("row 1: %+v", rows[0])
	}
	if rows[1].DLQ == nil || rows[1].DLQ.Reason != "validate.range" || rows[2].Line != 4 || !rows[2].Duplicate || rows[3].DLQ == nil || rows[3].DLQ.Reason != "validate.required" {
		t.Errorf("rows 2-4: %v", rows[1:])
	}
	if st.TextPII["msg/phone"] != 1 || len(st.EphemeralKeys) != 1 {
		t.Errorf("stats %+v", st)
	}
	if s := rows[0].String(); strings.Contains(s, "13812345678") || !strings.Contains(s, "line 1: ok") {
		t.Errorf("printed row %q", s)
	}
}
