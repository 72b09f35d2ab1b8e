package microbatch

import (
	"errors"
	"testing"
	"time"
)

// fakeClock is a clock that only moves when told to.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) Advance(d time.Duration) { c.now = c.now.Add(d) }

// scorer simulates a model whose batch of n rows costs fixed + n·perRow on
// the fake clock.
type scorer struct {
	clock         *fakeClock
	fixed, perRow time.Duration
}

func (s *scorer) cost(n int) time.Duration { return s.fixed + time.Duration(n)*s.perRow }

// step runs one batch of the controller's size and returns its latency.
func (s *scorer) step(t *testing.T, c *Controller) (int, time.Duration) {
	t.Helper()
	n := c.Size()
	err := c.Run(n, func() error {
		s.clock.Advance(s.cost(n))
		return nil
	})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return n, s.cost(n)
}

func newController(t *testing.T, cfg Config) (*Controller, *fakeClock) {
	t.Helper()
	clock := &fakeClock{now: time.Unix(0, 0)}
	cfg.Now = clock.Now
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	return c, clock
}

func TestConvergesToTheLargestBatchWithinHeadroom(t *testing.T) {
	c, clock := newController(t, Config{Budget: 10 * time.Millisecond, Max: 100_000})
	s := &scorer{clock: clock, fixed: 200 * time.Microsecond, perRow: 10 * time.Microsecond}
	for range 60 {
		if _, latency := s.step(t, c); latency > 10*time.Millisecond {
			t.Fatalf("batch of %d took %v, over the budget", c.Size(), latency)
		}
	}
	// n* = (0.8·10ms − 200µs) / 10µs = 780.
	if n := c.Size(); n < 765 || n > 780 {
		t.Fatalf("size %d after 60 batches, want about 780", n)
	}
}

func TestGrowsAtMostTwofoldPerBatch(t *testing.T) {
	c, clock := newController(t, Config{Budget: time.Second, Max: 1 << 20})
	s := &scorer{clock: clock, perRow: time.Nanosecond}
	prev := c.Size()
	for range 10 {
		s.step(t, c)
		if c.Size() > 2*prev {
			t.Fatalf("size grew from %d to %d in one batch", prev, c.Size())
		}
		prev = c.Size()
	}
	if prev != 1<<10 {
		t.Fatalf("size %d after 10 cheap batches, want 1024", prev)
	}
}

func TestCutsAtOnceWhenTheModelSlowsDown(t *testing.T) {
	c, clock := newController(t, Config{Budget: 10 * time.Millisecond, Max: 100_000})
	s := &scorer{clock: clock, fixed: 200 * time.Microsecond, perRow: 10 * time.Microsecond}
	for range 60 {
		s.step(t, c)
	}
	s.perRow = 40 * time.Microsecond
	if _, latency := s.step(t, c); latency <= 10*time.Millisecond {
		t.Fatalf("the first slow batch took %v; the test wants it over budget", latency)
	}
	// One batch over budget is enough to get back under it.
	for i := range 30 {
		if n, latency := s.step(t, c); latency > 10*time.Millisecond {
			t.Fatalf("batch %d after the slowdown: %d rows took %v, over budget", i, n, latency)
		}
	}
	// n* = (8ms − 200µs) / 40µs = 195.
	if n := c.Size(); n < 185 || n > 195 {
		t.Fatalf("size %d after the slowdown, want about 195", n)
	}
}

func TestStaysWithinBounds(t *testing.T) {
	c, clock := newController(t, Config{Budget: time.Millisecond, Min: 8, Max: 64})
	if c.Size() != 8 {
		t.Fatalf("initial size %d, want Min 8", c.Size())
	}
	cheap := &scorer{clock: clock, perRow: time.Nanosecond}
	for range 20 {
		cheap.step(t, c)
	}
	if c.Size() != 64 {
		t.Fatalf("size %d with cheap rows, want Max 64", c.Size())
	}
	// Every batch is over budget: the first cut spreads the fixed cost over
	// 64 rows (to 10), the second reaches Min.
	costly := &scorer{clock: clock, fixed: 5 * time.Millisecond}
	costly.step(t, c)
	costly.step(t, c)
	if c.Size() != 8 {
		t.Fatalf("size %d when even a batch of one is over budget, want Min 8", c.Size())
	}
}

func TestFailedOrEmptyBatchesTeachNothing(t *testing.T) {
	c, clock := newController(t, Config{Budget: time.Millisecond})
	boom := errors.New("boom")
	err := c.Run(1, func() error {
		clock.Advance(time.Hour)
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("run returned %v, want the score error", err)
	}
	c.Observe(0, time.Hour)
	if c.Size() != 1 {
		t.Fatalf("size %d after a failed and an empty batch, want the initial 1", c.Size())
	}
	c.Observe(1, time.Microsecond)
	if c.Size() != 2 {
		t.Fatalf("size %d after a fast batch, want 2", c.Size())
	}
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Budget: time.Second, Min: 10, Max: 5},
		{Budget: time.Second, Min: -1},
		{Budget: time.Second, Headroom: 1.5},
		{Budget: time.Second, Smoothing: -0.1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
	if err := (Config{Budget: time.Millisecond}).Validate(); err != nil {
		t.Errorf("budget only: %v", err)
	}
}
