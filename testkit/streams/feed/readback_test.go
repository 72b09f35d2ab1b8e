package feed

import (
	"math/rand/v2"
	"regexp"
	"testing"
)

// TestSyntheticPIIMatchesItsRegexp checks the hand matcher against the
// regular expression it stands for, on records made of the patterns'
// pieces, near misses included, and on the synthetic stream's own events.
func TestSyntheticPIIMatchesItsRegexp(t *testing.T) {
	re := regexp.MustCompile(`u-\d{6}|@example\.com|\+1-555-\d{3}-\d{4}`)
	pieces := []string{"u-", "u", "-", "0", "7", "12345", "123456", "@example.com", "@example.co", "example.com", "+1-555-", "+1-55-", "123-", "4567", "x", `"`, "+", "1", "é"}
	rng := rand.New(rand.NewPCG(1, 2))
	matched := 0
	for range 200_000 {
		var b []byte
		for range rng.IntN(8) {
			b = append(b, pieces[rng.IntN(len(pieces))]...)
		}
		want := re.Match(b)
		if got := plaintextPII.Match(b); got != want {
			t.Fatalf("Match(%q) = %v, the regexp says %v", b, got, want)
		}
		if want {
			matched++
		}
	}
	if matched < 1000 {
		t.Fatalf("only %d of the random records matched: the test does not exercise matches", matched)
	}
	for _, s := range []string{`{"user_id":"u-005274"}`, `"phone":"+1-555-127-7649"`, "user5274@example.com", "u-00527", "+1-555-127-764", "tok_ab12"} {
		if got, want := plaintextPII.Match([]byte(s)), re.MatchString(s); got != want {
			t.Errorf("Match(%q) = %v, the regexp says %v", s, got, want)
		}
	}
}

func BenchmarkSyntheticPII(b *testing.B) {
	rec := []byte(`{"event_id":"e-1-0","user_id":"tok_2f1c9a0b7d3e4f5a","email":"AbCdEfGhIjKlMnOpQrStUvWxYz0123456789==","phone":"*******7649","score":0.73,"model":"sea","version":1,"warm":true,"arm":"champion","partition":1}`)
	re := regexp.MustCompile(`u-\d{6}|@example\.com|\+1-555-\d{3}-\d{4}`)
	b.Run("regexp", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			re.Match(rec)
		}
	})
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			plaintextPII.Match(rec)
		}
	})
}
