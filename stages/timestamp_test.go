package stages

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestParseTimestampMatchesTime compares parseTimestampMicros with
// time.Parse(time.RFC3339Nano) and UnixMicro on random timestamps across
// years 0–9999, on invalid calendar dates and on forms that take the slow
// path, and checks that the direct path handles the common form.
//
// Each timestamp is also read by one timestampReader, which keeps the last
// minute it read: each random timestamp is followed by others of the same
// date and of the same minute (and by ones with a digit of the date or
// the minute changed), so that its cached minute is used, and must give
// the same results.
func TestParseTimestampMatchesTime(t *testing.T) {
	var r timestampReader
	cached := 0
	read := func(s string) {
		t.Helper()
		got, ok := parseTimestampMicros([]byte(s))
		hit := r.have && len(s) >= 16 && [16]byte([]byte(s)) == r.minute
		rgot, rok := r.micros([]byte(s))
		tm, err := time.Parse(time.RFC3339Nano, s)
		if ok != (err == nil) || (ok && got != tm.UnixMicro()) {
			t.Fatalf("%q: got %d ok=%v; time.Parse %v (%d), %v", s, got, ok, tm, tm.UnixMicro(), err)
		}
		if rok != ok || rgot != got {
			t.Fatalf("%q: timestampReader got %d ok=%v (cached minute %q), parseTimestampMicros %d ok=%v", s, rgot, rok, r.minute, got, ok)
		}
		if hit {
			cached++
		}
	}
	vary := rand.New(rand.NewPCG(7, 8))
	check := func(s string) {
		t.Helper()
		read(s)
		if len(s) < 20 {
			return
		}
		for range 2 {
			read(fmt.Sprintf("%sT%02d:%02d:%02d.%dZ", s[:10], vary.IntN(25), vary.IntN(61), vary.IntN(61), vary.IntN(1000)))
			read(fmt.Sprintf("%s:%02d.%0*dZ", s[:16], vary.IntN(61), 1+vary.IntN(10), vary.IntN(1000)))
		}
		read(s[:16] + ":00+01:00")
		read(s[:9] + string(rune('0'+vary.IntN(10))) + s[10:])
		read(s[:15] + string(rune('0'+vary.IntN(10))) + s[16:])
	}
	rng := rand.New(rand.NewPCG(5, 6))
	direct := 0
	for range 200000 {
		frac := ""
		if n := rng.IntN(11); n > 0 {
			frac = fmt.Sprintf(".%0*d", n, rng.IntN(1_000_000_000)%pow10i(n))
		}
		s := fmt.Sprintf("%04d-%02d-%02dT%02d:%02d:%02d%sZ", rng.IntN(10000), rng.IntN(14), rng.IntN(33), rng.IntN(25), rng.IntN(61), rng.IntN(61), frac)
		check(s)
		if _, ok := parseUTCTimestamp([]byte(s)); ok {
			direct++
		}
	}
	if direct < 10000 {
		t.Fatalf("only %d timestamps took the direct path", direct)
	}
	for _, s := range []string{
		"2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2000-02-29T23:59:59.999999999Z",
		"2025-04-31T00:00:00Z", "1969-12-31T23:59:59.9999995Z", "0000-01-01T00:00:00Z", "2025-01-01T00:00:00+02:00",
		"2025-01-01t00:00:00z", "2025-01-01T00:00:00.Z", "2025-01-01T00:00:00.1234567890Z", "2025-1-01T00:00:00Z",
		"2025-01-01T00:00:60Z", "2025-01-01T24:00:00Z", "2025-01-01 00:00:00Z", "2025-01-01T00:00:00", "",
		"+025-01-01T00:00:00Z", "2025-01-01T00:00:0aZ", "2025-01-01T00:00:00.-1Z",
	} {
		check(s)
	}
	if cached < 100000 {
		t.Fatalf("only %d timestamps were read with a cached minute", cached)
	}
}

func pow10i(n int) int {
	p := 1
	for range n {
		p *= 10
	}
	return p
}
