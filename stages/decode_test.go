package stages

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/streams"
)

// kv is one raw JSON member of a hand-built row.
type kv struct{ k, v string }

// baseRow is a valid event of the unit spec, field by field.
func baseRow() []kv {
	r := []kv{
		{"event_id", `"e-1"`}, {"ts", `"2025-03-04T05:06:07.123456Z"`},
		{"user_id", `"u-000042"`}, {"email", `"user42@example.com"`}, {"phone", `"+1-555-123-4567"`},
		{"country", `"DE"`}, {"device", `"web"`}, {"channel", `"paid"`},
	}
	for i := range 10 {
		r = append(r, kv{"f" + strconv.Itoa(i), strconv.FormatFloat(float64(i)+0.25, 'g', -1, 64)})
	}
	return append(r, kv{"n", "7"}, kv{"flag", "true"}, kv{"amount", "-2.5"})
}

// row renders baseRow with set (field → raw value; "" drops the field) applied.
func row(set map[string]string, extra ...kv) []byte {
	var sb strings.Builder
	sb.WriteByte('{')
	first := true
	add := func(k, v string) {
		if !first {
			sb.WriteByte(',')
		}
		first = false
		sb.WriteString(`"` + k + `":`) // raw: keys may hold escapes or bad bytes
		sb.WriteString(v)
	}
	for _, m := range baseRow() {
		v, ok := set[m.k]
		if !ok {
			v = m.v
		}
		if v != "" {
			add(m.k, v)
		}
	}
	for _, m := range extra {
		add(m.k, m.v)
	}
	sb.WriteByte('}')
	return []byte(sb.String())
}

// decodeOne decodes one input and returns its batch (row 0).
func decodeOne(t *testing.T, d *Decode, in []byte) *pipeline.Batch {
	t.Helper()
	b := newBatch(0, in)
	mustProcess(t, b, d)
	if got := b.Record.NumRows(); got != 1 {
		t.Fatalf("record has %d rows, want 1", got)
	}
	return b
}

const secret = "S3CR3T"

func TestDecodeAcceptsGeneratedEvents(t *testing.T) {
	spec := testSpec(t, false)
	evs, rows := genEvents(t, 1, 500, 50)
	b := newBatch(0, rows...)
	mustProcess(t, b, NewDecode(spec))
	for i, e := range evs {
		if !b.OK(i) {
			t.Fatalf("row %d rejected: %+v\n%s", i, b.Rejections[i], rows[i])
		}
		if got := colString(t, b, spec, "event_id", i); got != e.ID {
			t.Fatalf("row %d: event_id %q, want %q", i, got, e.ID)
		}
		if got := colString(t, b, spec, "phone", i); got != e.Phone {
			t.Fatalf("row %d: phone %q, want %q", i, got, e.Phone)
		}
		ts := b.Record.Column(spec.FieldIndex("ts")).(*array.Timestamp).Value(i)
		if got := ts.ToTime(arrow.Microsecond); !got.Equal(e.Time.Truncate(time.Microsecond)) {
			t.Fatalf("row %d: ts %v, want %v", i, got, e.Time)
		}
		for k, want := range e.F {
			got := b.Record.Column(spec.FieldIndex("f" + strconv.Itoa(k))).(*array.Float64).Value(i)
			if got != want {
				t.Fatalf("row %d: f%d = %v, want %v (bit-exact)", i, k, got, want)
			}
		}
		for _, f := range []string{"n", "flag", "amount"} {
			if !b.Record.Column(spec.FieldIndex(f)).IsNull(i) {
				t.Fatalf("row %d: absent field %s is not null", i, f)
			}
		}
	}
}

func TestDecodeHostile(t *testing.T) {
	spec := testSpec(t, false)
	long := strings.Repeat("x", 65)
	nest := func(n int, inner string) string {
		return strings.Repeat("[", n) + inner + strings.Repeat("]", n)
	}
	cases := []struct {
		name   string
		in     []byte
		reason string // "" = accepted
		hide   string // must not appear in Detail
	}{
		// wrong types, every field type
		{"string field holds number", row(map[string]string{"user_id": "12345"}), ReasonType, "12345"},
		{"string field holds bool", row(map[string]string{"user_id": "true"}), ReasonType, ""},
		{"string field holds object", row(map[string]string{"user_id": `{"v":"` + secret + `"}`}), ReasonType, secret},
		{"string field holds array", row(map[string]string{"email": `["` + secret + `"]`}), ReasonType, secret},
		{"float field holds string", row(map[string]string{"f3": `"` + secret + `"`}), ReasonType, secret},
		{"float field holds numeric string", row(map[string]string{"f3": `"1.5"`}), ReasonType, "1.5"},
		{"float field holds bool", row(map[string]string{"f3": "false"}), ReasonType, ""},
		{"float field holds array", row(map[string]string{"f3": "[1]"}), ReasonType, ""},
		{"int field holds fraction", row(map[string]string{"n": "1.5"}), ReasonType, "1.5"},
		{"int field holds string", row(map[string]string{"n": `"7"`}), ReasonType, ""},
		{"int field over 2^53", row(map[string]string{"n": "1e300"}), ReasonType, "1e300"},
		{"int field exponent integer", row(map[string]string{"n": "1e2"}), "", ""},
		{"int field 7.0", row(map[string]string{"n": "7.0"}), "", ""},
		{"bool field holds number", row(map[string]string{"flag": "1"}), ReasonType, ""},
		{"bool field holds string", row(map[string]string{"flag": `"true"`}), ReasonType, ""},
		{"timestamp holds number", row(map[string]string{"ts": "1700000000"}), ReasonType, "1700000000"},
		{"timestamp not RFC 3339", row(map[string]string{"ts": `"` + secret + `"`}), ReasonType, secret},
		{"timestamp date only", row(map[string]string{"ts": `"2025-03-04"`}), ReasonType, "2025"},
		{"timestamp with offset", row(map[string]string{"ts": `"2025-03-04T07:06:07+02:00"`}), "", ""},
		{"timestamp escaped", row(map[string]string{"ts": `"2025-03-04T05:06:07\u005a"`}), "", ""},
		// missing and null: decode keeps them as nulls, validate enforces required
		{"missing required field", row(map[string]string{"event_id": ""}), "", ""},
		{"null required field", row(map[string]string{"country": "null"}), "", ""},
		{"null every optional type", row(map[string]string{"n": "null", "flag": "null", "amount": "null", "email": "null"}), "", ""},
		// huge strings
		{"string at max bytes", row(map[string]string{"user_id": `"` + strings.Repeat("y", 64) + `"`}), "", ""},
		{"string over max bytes", row(map[string]string{"user_id": `"` + long + `"`}), ReasonTooLong, long},
		{"escaped string over max bytes", row(map[string]string{"user_id": `"` + strings.Repeat(`\u00e9`, 33) + `"`}), ReasonTooLong, "é"},
		{"huge string", row(map[string]string{"email": `"` + strings.Repeat(secret, 50000) + `"`}), ReasonTooLong, secret},
		{"huge unknown string is skipped", row(nil, kv{"blob", `"` + strings.Repeat("z", 100000) + `"`}), "", ""},
		// invalid UTF-8
		{"invalid UTF-8 in value", row(map[string]string{"user_id": "\"" + secret + "\xff\""}), ReasonUTF8, secret},
		{"invalid UTF-8 in key", row(nil, kv{"k\xc3\x28", "1"}), ReasonUTF8, ""},
		{"UTF-8 surrogate bytes", row(map[string]string{"device": "\"\xed\xa0\x80\""}), ReasonUTF8, ""},
		{"UTF-8 overlong encoding", row(map[string]string{"device": "\"\xc0\xaf\""}), ReasonUTF8, ""},
		{"UTF-8 sequence cut by the quote", row(map[string]string{"device": "\"ab\xe2\x82\""}), ReasonUTF8, ""},
		{"invalid UTF-8 in an escaped value", row(map[string]string{"user_id": "\"\\n" + secret + "\xfe\""}), ReasonUTF8, secret},
		{"invalid UTF-8 in a timestamp", row(map[string]string{"ts": "\"2025-03-04T05:06:07\xffZ\""}), ReasonUTF8, ""},
		{"invalid UTF-8 in an unknown value", row(nil, kv{"blob", "[\"\xff\"]"}), ReasonUTF8, ""},
		{"invalid UTF-8 outside strings", row(map[string]string{"f3": "1\xff"}), ReasonUTF8, ""},
		{"invalid UTF-8 after a syntax error", append(row(nil, kv{"x", "tru"}), "\"\xff\""...), ReasonUTF8, ""},
		{"valid UTF-8 in values", row(map[string]string{"user_id": "\"caf\u00e9 \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"", "country": "\"\xc3\xa9\\t\xe2\x82\xac\""}, kv{"cl\xc3\xa9", "\"\xf0\x9f\x98\x80\""}), "", ""},
		// nesting
		{"nesting in unknown field at limit", row(nil, kv{"x", nest(MaxJSONDepth, "1")}), "", ""},
		{"nesting in unknown field past limit", row(nil, kv{"x", nest(MaxJSONDepth+2, "1")}), ReasonDepth, ""},
		{"deep objects in unknown field", row(nil, kv{"x", strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100)}), ReasonDepth, ""},
		{"nesting 10001 in unknown field", row(nil, kv{"x", nest(10001, "1")}), ReasonDepth, ""},
		{"nesting on known float field", row(map[string]string{"f1": nest(10001, "1")}), ReasonType, ""},
		{"nesting on known string field", row(map[string]string{"user_id": nest(5, `"`+secret+`"`)}), ReasonType, secret},
		// an unknown key's name is the producer's: it may be personal data
		{"e-mail as a key with a bad value", row(nil, kv{"alice.smith@example.com", "tru"}), ReasonSyntax, "alice.smith"},
		{"e-mail as a key nested too deep", row(nil, kv{"bob@example.org", nest(MaxJSONDepth+2, "1")}), ReasonDepth, "bob@"},
		{"escaped e-mail as a key", row(nil, kv{`carol@example.com`, "[1,"}), ReasonSyntax, "carol"},
		{"unknown nested values skipped", row(nil, kv{"meta", `{"a":[1,-2.5e3,"s\"",true,false,null,{}],"b":{}}`}), "", ""},
		// duplicates
		{"duplicate known field", row(nil, kv{"f0", "1"}), ReasonDuplicate, ""},
		{"duplicate known field via escape", row(nil, kv{`f\u0030`, "1"}), ReasonDuplicate, ""},
		{"duplicate null field", []byte(`{"event_id":"a","email":null,"email":"` + secret + `"}`), ReasonDuplicate, secret},
		{"duplicate unknown field", row(nil, kv{"x", "1"}, kv{"x", "2"}), "", ""},
		// framing
		{"trailing garbage", append(row(nil), " x"...), ReasonSyntax, ""},
		{"two objects", append(row(nil), "{}"...), ReasonSyntax, ""},
		{"trailing whitespace", append(row(nil), " \n\t\r"...), "", ""},
		{"leading whitespace", append([]byte(" \n"), row(nil)...), "", ""},
		{"trailing comma", []byte(`{"event_id":"a",}`), ReasonSyntax, ""},
		{"missing colon", []byte(`{"event_id" "a"}`), ReasonSyntax, ""},
		{"unquoted key", []byte(`{event_id:"a"}`), ReasonSyntax, ""},
		{"single quotes", []byte(`{'event_id':'a'}`), ReasonSyntax, ""},
		{"empty object", []byte(`{}`), "", ""},
		{"array", []byte(`[` + string(row(nil)) + `]`), ReasonSyntax, ""},
		{"string", []byte(`"{}"`), ReasonSyntax, ""},
		{"null", []byte(`null`), ReasonSyntax, ""},
		{"number", []byte(`42`), ReasonSyntax, ""},
		{"empty input", []byte{}, ReasonSyntax, ""},
		{"whitespace only", []byte("  "), ReasonSyntax, ""},
		{"lone brace", []byte("{"), ReasonSyntax, ""},
		// escapes
		{"unicode escape", row(map[string]string{"user_id": `"\u0041\u00e9\u4e2d"`}), "", ""},
		{"surrogate pair", row(map[string]string{"user_id": `"\ud83d\ude00"`}), "", ""},
		{"lone high surrogate", row(map[string]string{"user_id": `"\ud83d` + secret + `"`}), ReasonSyntax, secret},
		{"lone low surrogate", row(map[string]string{"user_id": `"\ude00"`}), ReasonSyntax, ""},
		{"high surrogate then non-low", row(map[string]string{"user_id": `"\ud83d\u0041"`}), ReasonSyntax, ""},
		{"short unicode escape", row(map[string]string{"user_id": `"\u12"`}), ReasonSyntax, ""},
		{"bad hex escape", row(map[string]string{"user_id": `"\u12G4"`}), ReasonSyntax, ""},
		{"invalid escape", row(map[string]string{"user_id": `"a\x41"`}), ReasonSyntax, ""},
		{"raw control char", row(map[string]string{"user_id": "\"a\tb\""}), ReasonSyntax, ""},
		{"unterminated string", []byte(`{"user_id":"` + secret), ReasonSyntax, secret},
		{"escape at end", []byte(`{"user_id":"\`), ReasonSyntax, ""},
		{"simple escapes", row(map[string]string{"user_id": `"\"\\\/\b\f\n\r\t"`}), "", ""},
		// numbers
		{"exponent", row(map[string]string{"f0": "1.5e-3"}), "", ""},
		{"upper exponent with plus", row(map[string]string{"f0": "2E+2"}), "", ""},
		{"negative zero", row(map[string]string{"f0": "-0"}), "", ""},
		{"negative zero fraction", row(map[string]string{"f0": "-0.0"}), "", ""},
		{"leading zero", row(map[string]string{"f0": "01"}), ReasonSyntax, ""},
		{"leading plus", row(map[string]string{"f0": "+1"}), ReasonSyntax, ""},
		{"bare dot", row(map[string]string{"f0": ".5"}), ReasonSyntax, ""},
		{"trailing dot", row(map[string]string{"f0": "1."}), ReasonSyntax, ""},
		{"empty exponent", row(map[string]string{"f0": "1e"}), ReasonSyntax, ""},
		{"lone minus", row(map[string]string{"f0": "-"}), ReasonSyntax, ""},
		{"NaN", row(map[string]string{"f0": "NaN"}), ReasonSyntax, ""},
		{"Infinity", row(map[string]string{"f0": "Infinity"}), ReasonSyntax, ""},
		{"-Infinity", row(map[string]string{"f0": "-Infinity"}), ReasonSyntax, ""},
		{"hex number", row(map[string]string{"f0": "0x10"}), ReasonSyntax, ""},
		{"huge exponent", row(map[string]string{"f0": "1e400"}), ReasonType, "1e400"},
		{"huge negative", row(map[string]string{"f0": "-9e999"}), ReasonType, "9e999"},
		{"tiny exponent underflows to 0", row(map[string]string{"f0": "1e-400"}), "", ""},
		{"many digits", row(map[string]string{"f0": "3.14159265358979323846264338327950288"}), "", ""},
		{"misspelt literal", row(map[string]string{"flag": "tru"}), ReasonSyntax, ""},
		{"literal prefix", row(map[string]string{"flag": "truex"}), ReasonSyntax, ""},
		{"null prefix", row(map[string]string{"f0": "nullx"}), ReasonSyntax, ""},
	}
	d := NewDecode(spec)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := decodeOne(t, d, tc.in)
			rj := b.Rejections[0]
			if tc.reason == "" {
				if !b.OK(0) {
					t.Fatalf("rejected (%s: %s), want accepted", rj.Reason, rj.Detail)
				}
				return
			}
			if b.OK(0) {
				t.Fatalf("accepted, want %s", tc.reason)
			}
			if rj.Reason != tc.reason || rj.Stage != "decode" {
				t.Fatalf("rejection %s/%s (%s), want decode/%s", rj.Stage, rj.Reason, rj.Detail, tc.reason)
			}
			if rj.Detail == "" {
				t.Fatal("empty detail")
			}
			if tc.hide != "" && strings.Contains(rj.Detail, tc.hide) {
				t.Fatalf("detail %q holds the value %q", rj.Detail, tc.hide)
			}
			for c := 0; c < int(b.Record.NumCols()); c++ {
				if !b.Record.Column(c).IsNull(0) {
					t.Fatalf("rejected row has a value in column %d", c)
				}
			}
		})
	}
}

// TestDecodeValues checks what accepted hostile-but-valid rows decode to.
func TestDecodeValues(t *testing.T) {
	spec := testSpec(t, false)
	d := NewDecode(spec)
	str := func(in []byte, field string) string {
		b := decodeOne(t, d, in)
		if !b.OK(0) {
			t.Fatalf("%s rejected: %+v", in, b.Rejections[0])
		}
		return colString(t, b, spec, field, 0)
	}
	flt := func(in []byte, field string) float64 {
		b := decodeOne(t, d, in)
		if !b.OK(0) {
			t.Fatalf("%s rejected: %+v", in, b.Rejections[0])
		}
		return b.Record.Column(spec.FieldIndex(field)).(*array.Float64).Value(0)
	}
	for in, want := range map[string]string{
		`"\u0041\u00e9\u4e2d"`: "Aé中",
		`"\ud83d\ude00x"`:      "😀x",
		`"a\"b\\c\/d\n\t"`:     "a\"b\\c/d\n\t",
		`"plain\u0000nul"`:     "plain\x00nul",
		`"pre-\u00e9-é-post"`:  "pre-é-é-post",
		`"` + "日本語テキスト" + `"`:  "日本語テキスト",
	} {
		if got := str(row(map[string]string{"user_id": in}), "user_id"); got != want {
			t.Errorf("user_id %s decoded to %q, want %q", in, got, want)
		}
	}
	// Two escaped strings in one row must not overwrite each other.
	in := row(map[string]string{"user_id": `"\u0041-one"`, "phone": `"\u0042-two"`, "email": `"\u0043-three"`})
	b := decodeOne(t, d, in)
	for f, want := range map[string]string{"user_id": "A-one", "phone": "B-two", "email": "C-three"} {
		if got := colString(t, b, spec, f, 0); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
	if v := flt(row(map[string]string{"f0": "-0"}), "f0"); v != 0 || !math.Signbit(v) {
		t.Errorf("-0 decoded to %v (signbit %v)", v, math.Signbit(v))
	}
	if v := flt(row(map[string]string{"f0": "1.5e-3"}), "f0"); v != 0.0015 {
		t.Errorf("1.5e-3 decoded to %v", v)
	}
	if v := flt(row(map[string]string{"f0": "1e-400"}), "f0"); v != 0 {
		t.Errorf("1e-400 decoded to %v", v)
	}
	b = decodeOne(t, d, row(map[string]string{"n": "1e2", "flag": "false"}))
	if got := b.Record.Column(spec.FieldIndex("n")).(*array.Int64).Value(0); got != 100 {
		t.Errorf("n = %d, want 100", got)
	}
	if fl := b.Record.Column(spec.FieldIndex("flag")).(*array.Boolean); fl.IsNull(0) || fl.Value(0) {
		t.Errorf("flag = %v, want false", fl.ValueStr(0))
	}
	b = decodeOne(t, d, row(map[string]string{"ts": `"2025-03-04T07:06:07.5+02:00"`}))
	ts := b.Record.Column(spec.FieldIndex("ts")).(*array.Timestamp).Value(0).ToTime(arrow.Microsecond)
	if want := time.Date(2025, 3, 4, 5, 6, 7, 500_000_000, time.UTC); !ts.Equal(want) {
		t.Errorf("ts = %v, want %v", ts, want)
	}
}

// TestDecodeTruncated checks every proper prefix of a valid row is rejected
// as a syntax error.
func TestDecodeTruncated(t *testing.T) {
	spec := testSpec(t, false)
	d := NewDecode(spec)
	full := row(map[string]string{"user_id": `"\u0041\ud83d\ude00"`}, kv{"meta", `{"a":[1,true,null]}`})
	rows := make([][]byte, len(full))
	for n := range full {
		rows[n] = full[:n]
	}
	b := newBatch(0, rows...)
	mustProcess(t, b, d)
	for n := range rows {
		if b.OK(n) || b.Rejections[n].Reason != ReasonSyntax {
			t.Fatalf("prefix of %d bytes %q: state %v %+v, want %s", n, rows[n], b.State[n], b.Rejections[n], ReasonSyntax)
		}
	}
}

// TestDecodeCorruptions checks each testkit corruption gets its reason.
func TestDecodeCorruptions(t *testing.T) {
	spec := testSpec(t, false)
	spec.Schema.MaxStringBytes = 4096
	d := NewDecode(spec)
	_, rows := genEvents(t, 3, 40, 10)
	want := map[string][]string{
		streams.CorruptWrongType:    {ReasonType},
		streams.CorruptMissingField: {""}, // decode keeps a null; validate says required
		streams.CorruptTruncated:    {ReasonSyntax},
		streams.CorruptInvalidUTF8:  {ReasonUTF8},
		streams.CorruptHugeString:   {ReasonTooLong},
		streams.CorruptDeepNesting:  {ReasonType}, // on a known float field
		streams.CorruptNotObject:    {ReasonSyntax},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	v := NewValidate(spec)
	for _, kind := range streams.CorruptKinds {
		for i, r := range rows {
			bad, err := streams.CorruptAs(kind, rng, r)
			if err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
			b := newBatch(0, bad)
			mustProcess(t, b, d, v)
			got := b.Rejections[0].Reason
			if kind == streams.CorruptMissingField {
				if got != ReasonRequired || !strings.Contains(b.Rejections[0].Detail, "event_id") && !strings.Contains(b.Rejections[0].Detail, "ts") {
					t.Fatalf("%s row %d: %+v, want %s on event_id or ts", kind, i, b.Rejections[0], ReasonRequired)
				}
				continue
			}
			if b.OK(0) || got != want[kind][0] {
				t.Fatalf("%s row %d: state %v reason %q (%s), want %s", kind, i, b.State[0], got, b.Rejections[0].Detail, want[kind][0])
			}
		}
	}
}

// TestParseFloatMatchesStrconv is a property test of the fast float path.
func TestParseFloatMatchesStrconv(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	var plain int
	check := func(s string) {
		got, bad := parseFloat([]byte(s))
		want, err := strconv.ParseFloat(s, 64)
		if bad != (err != nil) {
			t.Fatalf("%s: bad=%v, strconv err=%v", s, bad, err)
		}
		if !bad && math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("%s: parseFloat %v (%x), strconv %v (%x)", s, got, math.Float64bits(got), want, math.Float64bits(want))
		}
		// The scanner's one-pass path must agree wherever it answers.
		p := scanner{data: []byte(s)}
		if v, ok := p.readPlainNumber(); ok {
			plain++
			// Where the JSON grammar ends the number early ("077" is 0
			// then garbage), the grammar-checking reader must agree.
			q := scanner{data: []byte(s)}
			if num, _ := q.readNumber(); q.pos != p.pos {
				t.Fatalf("%s: readPlainNumber stops at byte %d, readNumber at %d", s, p.pos, q.pos)
			} else if p.pos != len(s) {
				want, err = strconv.ParseFloat(string(num), 64)
			}
			if err != nil || math.Float64bits(v) != math.Float64bits(want) {
				t.Fatalf("%s: readPlainNumber %v up to byte %d, strconv %v (%v)", s, v, p.pos, want, err)
			}
		} else if p.pos != 0 {
			t.Fatalf("%s: readPlainNumber declined but moved to byte %d", s, p.pos)
		}
	}
	defer func() {
		if plain == 0 {
			t.Error("readPlainNumber took none of the numbers")
		}
	}()
	for _, s := range []string{"0", "-0", "0.0", "-0.0", "1", "0.1", "0.3", "123456789012345", "1234567890123456",
		"0.000000000000000000001", "0.0000000000000000000001", "0.00000000000000000000001", "999999999999999.5",
		"9007199254740993", "1e23", "8.41e21", "1.7976931348623157e308", "5e-324", "2.2250738585072011e-308",
		"0.30000000000000004", "100000000000000000000000", "-123.456", "4.35", "1.005", "2.675"} {
		check(s)
	}
	digits := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + rng.IntN(10))
		}
		return string(b)
	}
	for range 300000 {
		var s string
		switch rng.IntN(5) {
		case 4: // 16-17 significant digits, around the 2^53 mantissa limit
			m := digits(16 + rng.IntN(2))
			if rng.IntN(2) == 0 {
				m = "900719925474" + m[12:]
			}
			m = strings.TrimLeft(m, "0") + "1"
			at := 1 + rng.IntN(len(m)-1)
			s = m[:at] + "." + m[at:]
		case 0: // what the generators write: shortest 'g' of a random float
			s = strconv.FormatFloat(rng.NormFloat64()*math.Pow(10, float64(rng.IntN(12)-6)), 'g', -1, 64)
		case 1: // short decimals, the fast path's target
			s = digits(1+rng.IntN(8)) + "." + digits(1+rng.IntN(8))
		case 2: // around the 15-digit and 22-fraction-digit limits
			s = digits(1+rng.IntN(3)) + "." + digits(10+rng.IntN(16))
		default: // leading zeros after the point, exponents
			s = "0." + strings.Repeat("0", rng.IntN(25)) + digits(1+rng.IntN(17))
			if rng.IntN(2) == 0 {
				s += "e" + strconv.Itoa(rng.IntN(40)-20)
			}
		}
		if s[0] == '0' && len(s) > 1 && s[1] >= '0' && s[1] <= '9' {
			s = s[1:] // not a JSON number otherwise
		}
		if rng.IntN(2) == 0 && s[0] != '-' {
			s = "-" + s
		}
		check(s)
	}
}

// TestDecodeFloatColumnMatchesStrconv checks the column values, through the
// whole scanner, against strconv.
func TestDecodeFloatColumnMatchesStrconv(t *testing.T) {
	spec := testSpec(t, false)
	d := NewDecode(spec)
	rng := rand.New(rand.NewPCG(3, 5))
	var rows [][]byte
	var want []float64
	for range 2000 {
		s := strconv.FormatFloat(rng.Float64()*float64(rng.IntN(1000000)), 'f', rng.IntN(12), 64)
		rows = append(rows, row(map[string]string{"f5": s}))
		w, _ := strconv.ParseFloat(s, 64)
		want = append(want, w)
	}
	b := newBatch(0, rows...)
	mustProcess(t, b, d)
	col := b.Record.Column(spec.FieldIndex("f5")).(*array.Float64)
	for i, w := range want {
		if !b.OK(i) || col.Value(i) != w {
			t.Fatalf("row %d: ok=%v got %v want %v", i, b.OK(i), col.Value(i), w)
		}
	}
}

// TestDecodeReusesBuilders runs several batches through one Decode.
func TestDecodeReusesBuilders(t *testing.T) {
	spec := testSpec(t, false)
	d := NewDecode(spec)
	for k := range 3 {
		_, rows := genEvents(t, uint64(10+k), 64, 8)
		rows[5] = []byte("not json")
		b := newBatch(0, rows...)
		b.State[7] = pipeline.RowDuplicate // already dropped rows stay null
		mustProcess(t, b, d)
		if b.Record.NumRows() != 64 {
			t.Fatalf("batch %d: %d rows", k, b.Record.NumRows())
		}
		for i := range rows {
			wantOK := i != 5 && i != 7
			if b.OK(i) != wantOK {
				t.Fatalf("batch %d row %d: ok=%v", k, i, b.OK(i))
			}
			if isNull := b.Record.Column(0).IsNull(i); isNull == wantOK {
				t.Fatalf("batch %d row %d: null=%v", k, i, isNull)
			}
		}
	}
}

// FuzzDecode checks the decoder never panics and accepts only JSON objects
// that encoding/json also accepts, with the same field values.
func FuzzDecode(f *testing.F) {
	spec := testSpec(f, false)
	_, rows := genEvents(f, 9, 8, 4)
	rng := rand.New(rand.NewPCG(1, 1))
	for _, r := range rows {
		f.Add(r)
		for _, kind := range streams.CorruptKinds {
			if kind == streams.CorruptHugeString || kind == streams.CorruptDeepNesting {
				continue // large seeds slow the fuzzer's mutations down
			}
			if bad, err := streams.CorruptAs(kind, rng, r); err == nil {
				f.Add(bad)
			}
		}
	}
	f.Add(row(map[string]string{"user_id": `"\ud83d\ude00\u0041"`, "n": "1e2", "flag": "false"}, kv{"x", `[{"a":[1,{}]}]`}))
	f.Add([]byte(`{"f0":-0.0e-0,"n":-0}`))
	f.Add(row(map[string]string{"user_id": "\"caf\xc3\xa9 \xe2\x82\xac\\n\xf0\x9f\x98\x80\"", "ts": "\"2025-03-04T05:06:07.5Z\""}, kv{"\xc3\xa9", "\"\xe2\x82\xac\""}))
	f.Add(row(map[string]string{"device": "\"a\xed\xa0\x80\"", "f3": "tru"}))
	d := NewDecode(spec)
	f.Fuzz(func(t *testing.T, in []byte) {
		b := newBatch(0, in)
		if err := d.Process(t.Context(), b); err != nil {
			t.Fatal(err)
		}
		if !b.OK(0) {
			rj := b.Rejections[0]
			if rj.Reason == "" || rj.Stage != "decode" {
				t.Fatalf("rejection without reason: %+v", rj)
			}
			if (rj.Reason == ReasonUTF8) == utf8.Valid(in) {
				t.Fatalf("rejected %q for %s: %s (valid UTF-8: %v); invalid UTF-8 is the reason before any other", in, rj.Reason, rj.Detail, utf8.Valid(in))
			}
			return
		}
		if !utf8.Valid(in) {
			t.Fatalf("decode accepted %q, which is not valid UTF-8", in)
		}
		// Fields outside the schema are only skipped: a number there that
		// no float64 holds (1e700) is valid JSON, so only the schema's
		// fields are unmarshalled into Go values.
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(in, &raw); err != nil {
			t.Fatalf("decode accepted %q, encoding/json says %v", in, err)
		}
		obj := map[string]any{}
		for _, fs := range spec.Schema.Fields {
			if r, ok := raw[fs.Name]; ok {
				var v any
				if err := json.Unmarshal(r, &v); err != nil {
					t.Fatalf("decode accepted %q, encoding/json says %v about %s", in, err, fs.Name)
				}
				obj[fs.Name] = v
			}
		}
		for c, fs := range spec.Schema.Fields {
			col := b.Record.Column(c)
			v, present := obj[fs.Name]
			if !present || v == nil {
				if !col.IsNull(0) {
					t.Fatalf("%s absent or null, column holds %s", fs.Name, col.ValueStr(0))
				}
				continue
			}
			switch a := col.(type) {
			case *array.String:
				if s, ok := v.(string); !ok || s != a.Value(0) {
					t.Fatalf("%s: column %q, encoding/json %#v", fs.Name, a.Value(0), v)
				}
			case *array.Float64:
				if x, ok := v.(float64); !ok || x != a.Value(0) {
					t.Fatalf("%s: column %v, encoding/json %#v", fs.Name, a.Value(0), v)
				}
			case *array.Int64:
				if x, ok := v.(float64); !ok || x != float64(a.Value(0)) {
					t.Fatalf("%s: column %v, encoding/json %#v", fs.Name, a.Value(0), v)
				}
			case *array.Boolean:
				if x, ok := v.(bool); !ok || x != a.Value(0) {
					t.Fatalf("%s: column %v, encoding/json %#v", fs.Name, a.Value(0), v)
				}
			case *array.Timestamp:
				s, ok := v.(string)
				tm, err := time.Parse(time.RFC3339Nano, s)
				if !ok || err != nil || tm.UnixMicro() != int64(a.Value(0)) {
					t.Fatalf("%s: column %v, encoding/json %#v", fs.Name, a.Value(0), v)
				}
			}
		}
	})
}

// TestDecodeRejectedRowLeavesNoTrace rejects rows late, after their strings
// and numbers were written to the columns, between accepted rows: each
// rejected row must be null in every column, and every accepted row must
// equal what it decodes to alone.
func TestDecodeRejectedRowLeavesNoTrace(t *testing.T) {
	spec := testSpec(t, false)
	_, rows := genEvents(t, 77, 9, 4)
	for _, i := range []int{1, 4, 8} {
		rows[i] = append(bytes.TrimSuffix(rows[i], []byte("}")), `,"flag":"yes"}`...)
	}
	rows[5] = append(bytes.TrimSuffix(rows[5], []byte("}")), `,"user_id":"again"}`...)
	d := NewDecode(spec)
	b := newBatch(0, rows...)
	mustProcess(t, b, d)
	for i := range rows {
		wantOK := i != 1 && i != 4 && i != 5 && i != 8
		if b.OK(i) != wantOK {
			t.Fatalf("row %d: ok=%v, want %v", i, b.OK(i), wantOK)
		}
		alone := newBatch(0, rows[i])
		mustProcess(t, alone, NewDecode(spec))
		for c := range spec.Schema.Fields {
			col := b.Record.Column(c)
			if !wantOK {
				if !col.IsNull(i) {
					t.Fatalf("rejected row %d: column %s holds %s", i, spec.Schema.Fields[c].Name, col.ValueStr(i))
				}
				continue
			}
			if got, want := col.ValueStr(i), alone.Record.Column(c).ValueStr(0); got != want {
				t.Fatalf("row %d column %s: %s in the batch, %s alone", i, spec.Schema.Fields[c].Name, got, want)
			}
		}
	}
}

// TestDecodeSpacedKeys checks that keys written with space before and
// after their ':' (which nextKey's one comparison of `"name":` does not
// match, so the general path reads them) decode to the same record as the
// compact rows.
func TestDecodeSpacedKeys(t *testing.T) {
	spec := testSpec(t, false)
	_, rows := genEvents(t, 5, 64, 16)
	spaced := make([][]byte, len(rows))
	for i, r := range rows {
		spaced[i] = bytes.ReplaceAll(r, []byte(`":`), []byte("\" \t: "))
		if bytes.Equal(spaced[i], r) {
			t.Fatalf("row %d has no key to space out", i)
		}
	}
	compact, loose := newBatch(0, rows...), newBatch(0, spaced...)
	mustProcess(t, compact, NewDecode(spec))
	mustProcess(t, loose, NewDecode(spec))
	for i := range rows {
		if !compact.OK(i) || !loose.OK(i) {
			t.Fatalf("row %d: compact %+v, spaced %+v", i, compact.Rejections[i], loose.Rejections[i])
		}
	}
	if !array.RecordEqual(compact.Record, loose.Record) {
		t.Fatal("spaced keys decode to another record than compact ones")
	}
}
