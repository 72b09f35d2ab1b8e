package rollout_test

import (
	"fmt"
	"math"
	"strconv"
	"testing"

	"github.com/driftline/driftline/models/rollout"
)

func TestBucketGolden(t *testing.T) {
	// Pinned: routing must not change between releases, or keys would switch arms.
	for key, want := range map[string]int{"": 93, "a": 51, "user-42": 63, "order-2026-03-01-000017": 79} {
		if got := rollout.Bucket([]byte(key)); got != want {
			t.Errorf("Bucket(%q) = %d; want %d", key, got, want)
		}
	}
}

func TestInCanarySticky(t *testing.T) {
	steps := []int{1, 5, 25, 50, 100}
	for i := range 10000 {
		key := []byte("entity-" + strconv.Itoa(i))
		first := rollout.InCanary(key, 25)
		for range 3 {
			if rollout.InCanary(key, 25) != first {
				t.Fatalf("key %s changed arm between calls", key)
			}
		}
		// Growing the canary never moves a key back to the champion.
		in := false
		for _, p := range steps {
			now := rollout.InCanary(key, p)
			if in && !now {
				t.Fatalf("key %s left the canary when it grew to %d%%", key, p)
			}
			in = now
		}
	}
}

func TestInCanaryShareConverges(t *testing.T) {
	const n = 100000
	for _, format := range []string{"user-%d", "evt:%08x"} {
		for _, p := range []int{-10, 0, 1, 5, 25, 50, 75, 99, 100, 150} {
			in := 0
			for i := range n {
				if rollout.InCanary([]byte(fmt.Sprintf(format, i)), p) {
					in++
				}
			}
			want := math.Min(math.Max(float64(p), 0), 100) / 100
			// 5 binomial standard deviations, at least 0.1%.
			tol := math.Max(5*math.Sqrt(want*(1-want)/n), 0.001)
			if got := float64(in) / n; math.Abs(got-want) > tol && !(want == 0 && in == 0) {
				t.Errorf("keys %q at %d%%: share %.4f; want %.4f ± %.4f", format, p, got, want, tol)
			}
		}
	}
}

func TestBucketAllocs(t *testing.T) {
	key := []byte("entity-123456")
	if a := testing.AllocsPerRun(100, func() { rollout.InCanary(key, 5) }); a != 0 {
		t.Fatalf("InCanary allocates %v times per call", a)
	}
}
