package stages

import (
	"slices"
	"strings"
	"testing"

	"github.com/driftline/driftline/pipeline"
)

func TestValidate(t *testing.T) {
	spec := testSpec(t, false)
	cases := []struct {
		name   string
		set    map[string]string
		reason string
		field  string // named in Detail
		hide   string // not in Detail
	}{
		{"valid", nil, "", "", ""},
		{"missing id", map[string]string{"event_id": ""}, ReasonRequired, "event_id", ""},
		{"null id", map[string]string{"event_id": "null"}, ReasonRequired, "event_id", ""},
		{"missing time", map[string]string{"ts": ""}, ReasonRequired, "ts", ""},
		{"null required enum", map[string]string{"country": "null"}, ReasonRequired, "country", ""},
		{"missing required float", map[string]string{"f9": ""}, ReasonRequired, "f9", ""},
		{"optional fields absent", map[string]string{"email": "", "phone": "", "n": "", "flag": "", "amount": ""}, "", "", ""},
		{"empty id", map[string]string{"event_id": `""`}, ReasonEmptyID, "event_id", ""},
		{"int at min", map[string]string{"n": "0"}, "", "", ""},
		{"int at max", map[string]string{"n": "100"}, "", "", ""},
		{"int below min", map[string]string{"n": "-1"}, ReasonRange, "n", "-1"},
		{"int above max", map[string]string{"n": "101"}, ReasonRange, "n", "101"},
		{"float at max", map[string]string{"amount": "10.5"}, "", "", ""},
		{"float at min", map[string]string{"amount": "-10"}, "", "", ""},
		{"float above max", map[string]string{"amount": "10.500001"}, ReasonRange, "amount", "10.5"},
		{"float below min", map[string]string{"amount": "-10.01"}, ReasonRange, "amount", "10.01"},
		{"float far out", map[string]string{"amount": "1e300"}, ReasonRange, "amount", "1e300"},
		{"enum miss", map[string]string{"country": `"ZZSECRET"`}, ReasonEnum, "country", "ZZSECRET"},
		{"enum is case sensitive", map[string]string{"device": `"IOS"`}, ReasonEnum, "device", "IOS"},
		{"enum empty string", map[string]string{"channel": `""`}, ReasonEnum, "channel", ""},
		{"enum via escape", map[string]string{"country": `"\u0055S"`}, "", "", ""},
	}
	d, v := NewDecode(spec), NewValidate(spec)
	rows := make([][]byte, len(cases))
	for i, tc := range cases {
		rows[i] = row(tc.set)
	}
	// One batch: rows are judged independently.
	b := newBatch(0, rows...)
	mustProcess(t, b, d, v)
	for i, tc := range cases {
		rj := b.Rejections[i]
		if tc.reason == "" {
			if !b.OK(i) {
				t.Errorf("%s: rejected %+v", tc.name, rj)
			}
			continue
		}
		if b.OK(i) || rj.Stage != "validate" || rj.Reason != tc.reason {
			t.Errorf("%s: state %v %+v, want validate/%s", tc.name, b.State[i], rj, tc.reason)
			continue
		}
		if !strings.Contains(rj.Detail, tc.field) {
			t.Errorf("%s: detail %q does not name %s", tc.name, rj.Detail, tc.field)
		}
		if tc.hide != "" && strings.Contains(rj.Detail, tc.hide) {
			t.Errorf("%s: detail %q holds the value %q", tc.name, rj.Detail, tc.hide)
		}
	}
}

// TestValidateKeepsDecodeRejection checks a decode rejection is not
// replaced by a validate one.
func TestValidateKeepsDecodeRejection(t *testing.T) {
	spec := testSpec(t, false)
	b := newBatch(0, []byte(`{"event_id":`), row(map[string]string{"n": "500"}))
	mustProcess(t, b, NewDecode(spec), NewValidate(spec))
	if rj := b.Rejections[0]; rj.Stage != "decode" || rj.Reason != ReasonSyntax {
		t.Errorf("row 0: %+v, want decode/%s", rj, ReasonSyntax)
	}
	if rj := b.Rejections[1]; rj.Stage != "validate" || rj.Reason != ReasonRange {
		t.Errorf("row 1: %+v, want validate/%s", rj, ReasonRange)
	}
}

// TestValidateOnlyMax checks a one-sided range.
func TestValidateOnlyMax(t *testing.T) {
	spec := parseTestSpec(t, false, map[string]string{"{name: n, type: int, min: 0, max: 100}": "{name: n, type: int, max: 3}"})
	b := newBatch(0, row(map[string]string{"n": "-1000000"}), row(map[string]string{"n": "4"}))
	mustProcess(t, b, NewDecode(spec), NewValidate(spec))
	if !b.OK(0) {
		t.Errorf("row 0 rejected: %+v", b.Rejections[0])
	}
	if b.OK(1) || b.Rejections[1].Reason != ReasonRange {
		t.Errorf("row 1: %+v, want %s", b.Rejections[1], ReasonRange)
	}
}

// TestEnumSetHas compares the enum check (word path, list path, map path)
// with a map on near-miss strings: prefixes, NUL padding, 8- and 9-byte
// values, the empty string.
func TestEnumSetHas(t *testing.T) {
	enums := [][]string{
		{"US", "GB", "DE", "", "abcdefgh"},
		{"US", "abcdefghi"},
		{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q"},
	}
	probes := []string{"", "U", "US", "US\x00", "\x00US", "USA", "GB", "abcdefgh", "abcdefg", "abcdefgh\x00", "abcdefghi", "q", "qq", "A"}
	for k, values := range enums {
		spec := testSpec(t, false)
		spec.Schema.Fields[5].Enum = values
		e := &NewValidate(spec).enums[5]
		if k == 0 && e.words == nil || k == 1 && e.words != nil || k == 2 && e.set == nil {
			t.Fatalf("enum %d: words=%v set=%v", k, e.words != nil, e.set != nil)
		}
		for _, p := range append(probes, values...) {
			if got, want := e.has(p), slices.Contains(values, p); got != want {
				t.Fatalf("enum %v: has(%q) = %v, want %v", values, p, got, want)
			}
		}
	}
}

// TestValidateEnumWords checks the enum check on a decoded column (the
// word path loads 8 bytes of the column's data, past the value, and masks
// them; the last value of the column has no 8 bytes left and takes the
// byte-by-byte path): each probe, between neighbours of other lengths, is
// rejected exactly when the enum does not hold it.
func TestValidateEnumWords(t *testing.T) {
	spec := testSpec(t, false)
	enum := spec.Schema.Fields[spec.FieldIndex("country")].Enum
	probes := []string{"US", "U", "USA", "US\x00", "GB", "GBR", "", "abcdefgh", "CA", "C", "JPX", "FR", "F", "DE", "INDIA", "BR", "US"}
	rows := make([][]byte, len(probes))
	for i, p := range probes {
		rows[i] = row(map[string]string{"country": string(pipeline.AppendJSONString(nil, p))})
	}
	b := newBatch(0, rows...)
	mustProcess(t, b, NewDecode(spec), NewValidate(spec))
	for i, p := range probes {
		want := slices.Contains(enum, p)
		if b.OK(i) != want || !want && b.Rejections[i].Reason != ReasonEnum {
			t.Errorf("country %q (row %d): accepted=%v %+v, want accepted=%v", p, i, b.OK(i), b.Rejections[i], want)
		}
	}
}
