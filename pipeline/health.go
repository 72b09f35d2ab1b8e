package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Health is what a process knows of its external dependencies (Redis, the
// brokers): each is up or down, and a dependency that is down has a short
// reason and the time it went down. The loops that use a dependency report
// what they see (Down on a failure, Up on a success), and the process is
// not ready (/readyz) while any dependency is down.
//
// Reasons are shown to unauthenticated callers of /readyz: they name the
// kind of failure ("timeout", "connection refused"), never an address or a
// credential. The full error belongs in the log.
//
// It registers driftline_pipeline_dependency_up{dependency} (1 up, 0 down)
// and driftline_pipeline_batch_retries_total{dependency}. A transition is
// logged once: the first Down after Up, and the Up that ends an outage,
// with its length. Health is safe for concurrent use.
type Health struct {
	log     *slog.Logger
	up      *prometheus.GaugeVec
	retries *prometheus.CounterVec

	mu   sync.Mutex
	deps map[string]*dependency
}

type dependency struct {
	down   bool
	reason string
	since  time.Time
	// upc is closed when the dependency comes (or is) up.
	upc chan struct{}
}

// NewHealth registers the health metrics on reg and starts with every one
// of deps up. log defaults to slog.Default().
func NewHealth(reg prometheus.Registerer, log *slog.Logger, deps ...string) (*Health, error) {
	if log == nil {
		log = slog.Default()
	}
	h := &Health{
		log: log,
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "driftline_pipeline_dependency_up",
			Help: "Whether an external dependency of the pipeline answers (1) or not (0); the process is not ready while one is 0.",
		}, []string{"dependency"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "driftline_pipeline_batch_retries_total",
			Help: "Micro-batches tried again after a dependency failed them (the partition loop pauses and retries the same batch).",
		}, []string{"dependency"}),
		deps: map[string]*dependency{},
	}
	for _, c := range []prometheus.Collector{h.up, h.retries} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("health metrics: %w", err)
		}
	}
	for _, d := range deps {
		h.state(d)
	}
	return h, nil
}

// state returns dep's state, adding it (up) when new; h.mu is held.
func (h *Health) state(dep string) *dependency {
	if d := h.deps[dep]; d != nil {
		return d
	}
	upc := make(chan struct{})
	close(upc)
	d := &dependency{upc: upc}
	h.deps[dep] = d
	h.up.WithLabelValues(dep).Set(1)
	h.retries.WithLabelValues(dep)
	return d
}

// Down marks dep down for reason (kept from the first Down of an outage).
func (h *Health) Down(dep, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.state(dep)
	if d.down {
		return
	}
	d.down, d.reason, d.since, d.upc = true, reason, time.Now(), make(chan struct{})
	h.up.WithLabelValues(dep).Set(0)
	h.log.Warn("dependency unavailable: not ready; the loops that need it pause and retry", "dependency", dep, "reason", reason)
}

// Up marks dep up, and wakes whoever waits for it (UpC).
func (h *Health) Up(dep string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.state(dep)
	if !d.down {
		return
	}
	h.log.Info("dependency available again", "dependency", dep, "after", time.Since(d.since).Round(time.Millisecond))
	d.down, d.reason = false, ""
	close(d.upc)
	h.up.WithLabelValues(dep).Set(1)
}

// UpC returns a channel that is closed once dep is up (at once when it is
// up now).
func (h *Health) UpC(dep string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state(dep).upc
}

// IsUp reports whether dep is up.
func (h *Health) IsUp(dep string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.state(dep).down
}

// Problems lists the dependencies that are down, sorted, one line each:
// "redis: timeout (for 12s)". It is empty when all are up.
func (h *Health) Problems() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for name, d := range h.deps {
		if d.down {
			out = append(out, fmt.Sprintf("%s: %s (for %s)", name, d.reason, time.Since(d.since).Round(time.Second)))
		}
	}
	slices.Sort(out)
	return out
}

// Default retry backoff bounds of a RetryPolicy.
const (
	DefaultRetryMinBackoff = 100 * time.Millisecond
	DefaultRetryMaxBackoff = 5 * time.Second
)

// RetryPolicy says how a Source treats a batch whose handler failed: when
// Classify calls the error transient (a dependency is unavailable and will
// come back by itself), the partition loop pauses and hands the handler the
// same batch again, after a capped exponential backoff, until it succeeds
// or the loop stops; no offset is committed past the batch meanwhile. Any
// other error stops the Source, as without a policy.
type RetryPolicy struct {
	// Classify returns the dependency at fault and a short reason (no
	// address, no secret) when err is transient; ok false otherwise.
	// Required.
	Classify func(err error) (dep, reason string, ok bool)
	// Health is told of failures and recoveries, counts the retries, and
	// wakes a waiting loop as soon as the dependency is up again.
	// Required.
	Health *Health
	// MinBackoff and MaxBackoff bound the wait between tries (defaults
	// DefaultRetryMinBackoff and DefaultRetryMaxBackoff): it doubles from
	// MinBackoff up to MaxBackoff, and ends early, after MinBackoff, once
	// Health says the dependency is up.
	MinBackoff, MaxBackoff time.Duration
}

// Validate checks the policy.
func (p *RetryPolicy) Validate() error {
	switch {
	case p.Classify == nil || p.Health == nil:
		return fmt.Errorf("retry policy: classify and health are required")
	case p.MinBackoff < 0 || p.MaxBackoff < 0 || p.MaxBackoff > 0 && p.MaxBackoff < p.MinBackoff:
		return fmt.Errorf("retry policy: backoff bounds %s..%s", p.MinBackoff, p.MaxBackoff)
	}
	return nil
}

// backoff is the wait before try n+1 (n ≥ 1 failed tries).
func (p *RetryPolicy) backoff(n int) (lo, hi time.Duration) {
	lo, hi = p.MinBackoff, p.MaxBackoff
	if lo == 0 {
		lo = DefaultRetryMinBackoff
	}
	if hi == 0 {
		hi = DefaultRetryMaxBackoff
	}
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	return lo, min(d, hi)
}

// Retries is one partition loop's retry state for the batch in hand under
// Policy (nil: no retries). Use one per loop, from its goroutine.
type Retries struct {
	Policy *RetryPolicy
	n      int
	dep    string
}

// Failed is called when the batch failed with err. For a transient error
// it marks the dependency down, counts a retry, waits the backoff and
// returns true: try the same batch again. It returns false at once for any
// other error (or without a policy), and when stop closes or ctx ends
// during the wait.
func (r *Retries) Failed(ctx context.Context, stop <-chan struct{}, err error) bool {
	p := r.Policy
	if p == nil {
		return false
	}
	dep, reason, ok := p.Classify(err)
	if !ok {
		return false
	}
	r.n++
	r.dep = dep
	p.Health.Down(dep, reason)
	p.Health.retries.WithLabelValues(dep).Inc()
	lo, d := p.backoff(r.n)
	floor := time.NewTimer(lo)
	defer floor.Stop()
	select {
	case <-floor.C:
	case <-stop:
		return false
	case <-ctx.Done():
		return false
	}
	rest := time.NewTimer(d - lo)
	defer rest.Stop()
	select {
	case <-rest.C:
	case <-p.Health.UpC(dep):
	case <-stop:
		return false
	case <-ctx.Done():
		return false
	}
	return true
}

// Succeeded ends the batch's retries: a dependency that failed it is up.
func (r *Retries) Succeeded() {
	if r.n > 0 && r.Policy != nil {
		r.Policy.Health.Up(r.dep)
	}
	r.n, r.dep = 0, ""
}

// Tries is how many times the batch in hand failed so far.
func (r *Retries) Tries() int { return r.n }
