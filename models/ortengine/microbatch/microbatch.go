// Package microbatch picks micro-batch sizes from a latency budget.
//
// A Controller learns the cost of one row from timed batches and proposes
// the largest batch whose expected latency fits a target share of the
// budget. With a per-batch cost a + b·n, the proposal converges to
// n* = (Headroom·Budget − a)/b: dividing the budget by the observed cost per
// row over-counts the fixed cost a at small n, and each step moves the
// proposal closer to n*. Growth is at most ×2 per batch, so one cheap batch
// cannot make the next one huge; a batch over budget cuts the proposal at
// once, from that batch's cost alone.
package microbatch

import (
	"errors"
	"fmt"
	"time"
)

// Config configures a Controller. Zero fields take the default stated on
// them; Budget is required.
type Config struct {
	// Budget is the latency allowed for scoring one batch.
	Budget time.Duration
	// Min and Max bound the proposed size. Defaults 1 and 4096.
	Min, Max int
	// Headroom is the share of Budget a batch aims for, in (0, 1].
	// Default 0.8.
	Headroom float64
	// Smoothing is the weight of a new in-budget observation in the
	// moving average of the cost per row, in (0, 1]. Default 0.3.
	Smoothing float64
	// Now reads the clock that Run times batches with. Default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.Min == 0 {
		c.Min = 1
	}
	if c.Max == 0 {
		c.Max = 4096
	}
	if c.Headroom == 0 {
		c.Headroom = 0.8
	}
	if c.Smoothing == 0 {
		c.Smoothing = 0.3
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports whether c, with its defaults applied, is usable.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Budget <= 0:
		return errors.New("microbatch: budget must be positive")
	case c.Min < 1 || c.Max < c.Min:
		return fmt.Errorf("microbatch: size bounds [%d, %d] are not 1 ≤ min ≤ max", c.Min, c.Max)
	case !(c.Headroom > 0 && c.Headroom <= 1):
		return fmt.Errorf("microbatch: headroom %g is outside (0, 1]", c.Headroom)
	case !(c.Smoothing > 0 && c.Smoothing <= 1):
		return fmt.Errorf("microbatch: smoothing %g is outside (0, 1]", c.Smoothing)
	}
	return nil
}

// Controller proposes batch sizes. It is not safe for concurrent use: give
// each scoring loop its own.
type Controller struct {
	cfg    Config
	size   int
	perRow float64 // moving average of the cost of one row, in ns; 0 before the first observation
	target float64 // Headroom·Budget, in ns
}

// New returns a Controller that starts at cfg.Min rows.
func New(cfg Config) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Controller{cfg: cfg, size: cfg.Min, target: cfg.Headroom * float64(cfg.Budget)}, nil
}

// Size is the number of rows the next batch should have, at most: a caller
// takes up to Size() rows, or fewer when fewer are waiting.
func (c *Controller) Size() int { return c.size }

// Run calls score, which must process n rows, times it with the
// controller's clock, and learns from the time it took (unless score
// fails). It returns score's error.
func (c *Controller) Run(n int, score func() error) error {
	start := c.cfg.Now()
	if err := score(); err != nil {
		return err
	}
	c.Observe(n, c.cfg.Now().Sub(start))
	return nil
}

// Observe records that a batch of n rows took elapsed, and updates Size.
// Observations with n < 1 are ignored.
func (c *Controller) Observe(n int, elapsed time.Duration) {
	if n < 1 {
		return
	}
	sample := float64(max(elapsed, 1)) / float64(n)
	if c.perRow == 0 || elapsed > c.cfg.Budget {
		c.perRow = sample
	} else {
		c.perRow += c.cfg.Smoothing * (sample - c.perRow)
	}
	next := c.target / c.perRow
	next = min(next, float64(2*c.size), float64(c.cfg.Max))
	c.size = max(int(next), c.cfg.Min)
}
