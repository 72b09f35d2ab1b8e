package streams

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
)

// wireEvent is the JSON form of an Event, decoded strictly.
type wireEvent struct {
	EventID string   `json:"event_id"`
	TS      string   `json:"ts"`
	UserID  string   `json:"user_id"`
	Email   string   `json:"email"`
	Phone   string   `json:"phone"`
	Country string   `json:"country"`
	Device  string   `json:"device"`
	Channel string   `json:"channel"`
	F0      *float64 `json:"f0"`
	F1      *float64 `json:"f1"`
	F2      *float64 `json:"f2"`
	F3      *float64 `json:"f3"`
	F4      *float64 `json:"f4"`
	F5      *float64 `json:"f5"`
	F6      *float64 `json:"f6"`
	F7      *float64 `json:"f7"`
	F8      *float64 `json:"f8"`
	F9      *float64 `json:"f9"`
}

func (w *wireEvent) f() [10]*float64 {
	return [10]*float64{w.F0, w.F1, w.F2, w.F3, w.F4, w.F5, w.F6, w.F7, w.F8, w.F9}
}

func decodeStrict(t *testing.T, row []byte) wireEvent {
	t.Helper()
	var w wireEvent
	dec := json.NewDecoder(bytes.NewReader(row))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		t.Fatalf("decode %s: %v", row, err)
	}
	return w
}

func TestAppendJSONRoundTrip(t *testing.T) {
	for _, cfg := range concepts {
		var buf []byte
		for _, e := range take(mustGenerator(t, cfg), 2000) {
			buf = AppendJSON(buf[:0], &e)
			w := decodeStrict(t, buf)
			ts, err := time.Parse(time.RFC3339Nano, w.TS)
			if err != nil || !ts.Equal(e.Time) || !strings.HasSuffix(w.TS, "Z") {
				t.Fatalf("ts %q (%v) does not give %v in UTC", w.TS, err, e.Time)
			}
			if w.EventID != e.ID || w.UserID != e.UserID || w.Email != e.Email || w.Phone != e.Phone ||
				w.Country != e.Country || w.Device != e.Device || w.Channel != e.Channel {
				t.Fatalf("strings changed in %s for %+v", buf, e)
			}
			for i, f := range w.f() {
				if f == nil || *f != e.F[i] {
					t.Fatalf("f%d in %s does not give %v", i, buf, e.F[i])
				}
			}
			if bytes.Contains(buf, []byte("label")) {
				t.Fatalf("event JSON carries the label: %s", buf)
			}
		}
	}
}

func TestAppendJSONFieldOrder(t *testing.T) {
	e := Event{ID: "e-1-0", Time: time.Date(2025, 1, 2, 3, 4, 5, 600, time.FixedZone("y", -7200)),
		UserID: "u-000001", Email: "user1@example.com", Phone: "+1-555-000-0001",
		Country: "DE", Device: "web", Channel: "paid", F: [10]float64{0.5, 1e21, -3, 1e-7}}
	want := `{"event_id":"e-1-0","ts":"2025-01-02T05:04:05.0000006Z","user_id":"u-000001",` +
		`"email":"user1@example.com","phone":"+1-555-000-0001","country":"DE","device":"web","channel":"paid",` +
		`"f0":0.5,"f1":1e+21,"f2":-3,"f3":1e-07,"f4":0,"f5":0,"f6":0,"f7":0,"f8":0,"f9":0}`
	if got := string(AppendJSON([]byte("x"), &e)); got != "x"+want {
		t.Fatalf("AppendJSON =\n%s\nwant\n%s", got, "x"+want)
	}
	e.Label = 1
	if got := string(AppendLabelJSON(nil, &e)); got != `{"event_id":"e-1-0","label":1}` {
		t.Fatalf("AppendLabelJSON = %s", got)
	}
}

func TestAppendJSONEscapes(t *testing.T) {
	e := Event{
		ID: "q\"uote\\back\nnl\ttab\x01ctl", UserID: "naïve ✓ 🚀", Email: "bad\xffutf8",
		F: [10]float64{math.NaN(), math.Inf(1)},
	}
	row := AppendJSON(nil, &e)
	var m map[string]any
	if err := json.Unmarshal(row, &m); err != nil {
		t.Fatalf("unmarshal %q: %v", row, err)
	}
	if m["event_id"] != e.ID || m["user_id"] != e.UserID || m["email"] != "bad\uFFFDutf8" {
		t.Fatalf("strings did not round-trip: %q", row)
	}
	if m["f0"] != nil || m["f1"] != nil {
		t.Fatalf("NaN and Inf should be null: %q", row)
	}
	if !utf8.Valid(row) {
		t.Fatalf("row is not UTF-8: %q", row)
	}
	var lbl struct {
		EventID string `json:"event_id"`
		Label   *int   `json:"label"`
	}
	if err := json.Unmarshal(AppendLabelJSON(nil, &e), &lbl); err != nil || lbl.EventID != e.ID || lbl.Label == nil || *lbl.Label != 0 {
		t.Fatalf("label JSON: %+v, %v", lbl, err)
	}
}

func rows(t *testing.T, n int) [][]byte {
	t.Helper()
	var out [][]byte
	for _, e := range take(mustGenerator(t, Config{Concept: ConceptAgrawal, Seed: 11}), n) {
		out = append(out, AppendJSON(nil, &e))
	}
	return out
}

// checkMalformed fails unless bad is malformed in the way kind says.
func checkMalformed(t *testing.T, kind string, row, bad []byte) {
	t.Helper()
	short := func(b []byte) string {
		if len(b) > 200 {
			return string(b[:200]) + "..."
		}
		return string(b)
	}
	switch kind {
	case CorruptWrongType:
		var m map[string]any
		if err := json.Unmarshal(bad, &m); err != nil {
			t.Fatalf("%s: %v in %s", kind, err, short(bad))
		}
		strs := 0
		for i := range 10 {
			if _, ok := m["f"+strconv.Itoa(i)].(string); ok {
				strs++
			}
		}
		var w wireEvent
		if strs != 1 || json.Unmarshal(bad, &w) == nil {
			t.Fatalf("%s: want exactly one float field holding a string: %s", kind, short(bad))
		}
	case CorruptMissingField:
		var m map[string]any
		if err := json.Unmarshal(bad, &m); err != nil {
			t.Fatalf("%s: %v in %s", kind, err, short(bad))
		}
		_, id := m["event_id"]
		_, ts := m["ts"]
		if id == ts || len(m) != 17 {
			t.Fatalf("%s: want exactly one of event_id and ts removed, 17 fields left: %s", kind, short(bad))
		}
	case CorruptTruncated:
		if json.Valid(bad) || len(bad) == 0 || len(bad) >= len(row) || !bytes.HasPrefix(row, bad) {
			t.Fatalf("%s: want a proper, invalid prefix of the row: %s", kind, short(bad))
		}
	case CorruptInvalidUTF8:
		if utf8.Valid(bad) || !utf8.Valid(row) {
			t.Fatalf("%s: want invalid UTF-8: %q", kind, bad)
		}
	case CorruptHugeString:
		var m map[string]any
		if err := json.Unmarshal(bad, &m); err != nil {
			t.Fatalf("%s: %v in %s", kind, err, short(bad))
		}
		huge := 0
		for _, v := range m {
			if s, ok := v.(string); ok && len(s) >= HugeStringLen {
				huge++
			}
		}
		if huge != 1 {
			t.Fatalf("%s: want one string of %d bytes: %s", kind, HugeStringLen, short(bad))
		}
	case CorruptDeepNesting:
		var m map[string]any
		err := json.Unmarshal(bad, &m)
		if err == nil || !strings.Contains(err.Error(), "depth") || !bytes.Contains(bad, bytes.Repeat([]byte("["), DeepNestingDepth)) {
			t.Fatalf("%s: want a nesting depth error, got %v: %s", kind, err, short(bad))
		}
	case CorruptNotObject:
		if !json.Valid(bad) || bytes.HasPrefix(bytes.TrimSpace(bad), []byte("{")) {
			t.Fatalf("%s: want valid JSON that is not an object: %s", kind, short(bad))
		}
	default:
		t.Fatalf("unknown kind %q", kind)
	}
}

func TestCorruptAsEveryKind(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, kind := range CorruptKinds {
		for _, row := range rows(t, 200) {
			orig := bytes.Clone(row)
			bad, err := CorruptAs(kind, rng, row)
			if err != nil {
				t.Fatalf("CorruptAs(%s): %v", kind, err)
			}
			if !bytes.Equal(row, orig) {
				t.Fatalf("CorruptAs(%s) modified its input", kind)
			}
			checkMalformed(t, kind, row, bad)
		}
	}
}

func TestCorruptPicksEveryKindDeterministically(t *testing.T) {
	run := func() ([]string, [][]byte) {
		rng := rand.New(rand.NewPCG(5, 6))
		var kinds []string
		var bads [][]byte
		for _, row := range rows(t, 300) {
			bad, kind := Corrupt(rng, row)
			checkMalformed(t, kind, row, bad)
			kinds = append(kinds, kind)
			bads = append(bads, bad)
		}
		return kinds, bads
	}
	k1, b1 := run()
	k2, b2 := run()
	for i := range k1 {
		if k1[i] != k2[i] || !bytes.Equal(b1[i], b2[i]) {
			t.Fatalf("row %d: two runs with one seed gave %s and %s", i, k1[i], k2[i])
		}
	}
	for _, kind := range CorruptKinds {
		n := 0
		for _, k := range k1 {
			if k == kind {
				n++
			}
		}
		if n < 20 {
			t.Errorf("kind %s picked %d times in 300; want about 43", kind, n)
		}
	}
}

func TestCorruptForeignRow(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	if _, err := CorruptAs(CorruptWrongType, rng, []byte(`{"a":1}`)); err == nil {
		t.Fatal("CorruptAs(wrong_type) on a row without float fields succeeded")
	}
	if _, err := CorruptAs("sideways", rng, []byte(`{"a":1}`)); err == nil {
		t.Fatal("CorruptAs with an unknown kind succeeded")
	}
	for range 50 {
		bad, kind := Corrupt(rng, []byte(`{"a":1}`))
		if kind != CorruptTruncated && kind != CorruptNotObject {
			t.Fatalf("Corrupt on a foreign row gave kind %s", kind)
		}
		checkMalformed(t, kind, []byte(`{"a":1}`), bad)
	}
}

// TestRandomLettersAreUniformLowercase: a huge_string's letters are all
// lowercase, every letter about 1/26 of them, and the same seed gives the
// same letters.
func TestRandomLettersAreUniformLowercase(t *testing.T) {
	a, b := make([]byte, HugeStringLen), make([]byte, HugeStringLen)
	randomLetters(rand.New(rand.NewPCG(7, 8)), a)
	randomLetters(rand.New(rand.NewPCG(7, 8)), b)
	if !bytes.Equal(a, b) {
		t.Fatal("the same seed gave different letters")
	}
	var counts [26]int
	for i, c := range a {
		if c < 'a' || c > 'z' {
			t.Fatalf("byte %d is %q, want a lowercase letter", i, c)
		}
		counts[c-'a']++
	}
	want := float64(len(a)) / 26
	for l, n := range counts {
		if math.Abs(float64(n)-want) > 0.05*want {
			t.Errorf("letter %c: %d of %d, want about %.0f", 'a'+l, n, len(a), want)
		}
	}
}
