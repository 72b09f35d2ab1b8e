package rollout

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"
)

// GateSpec is a gate as people write it: the rollout.gate block of a pipeline spec
// (YAML) and the gate of an admin's policy (JSON), with the same snake_case keys. A
// field that is absent takes its default. A zero number also means the default,
// except failure_limit, whose 0 tolerates no failed measurement; max_delta and
// consecutive_error_limit are pointers so that an explicit 0 (no regression allowed,
// no error tolerated) differs from absent. Resolve applies the defaults and checks
// every field; this is the one place where a gate is defaulted and validated.
//
//	gate:
//	  min_samples: 1000          # outcomes both arms need; new outcomes per canary step
//	  metric: accuracy           # accuracy, logloss, mae or rmse
//	  max_delta: 0.01            # regression allowed against the champion (≥ 0)
//	  confidence: 0.95           # level of the one-sided bounds, in [0.5, 1)
//	  failure_limit: 0           # failed measurements tolerated
//	  consecutive_error_limit: 4 # unusable measurements in a row tolerated
//	  steps: [5, 25, 50, 100]    # canary percentages, increasing, ending at 100
//	  bake_samples: 1000         # outcomes a new champion is watched (default min_samples)
//	  block_on_open_drift: true  # hold while a feature-drift alert is open
//	  interval: 1s               # how often the gate is evaluated (1ms..1m)
type GateSpec struct {
	MinSamples            int      `yaml:"min_samples" json:"min_samples,omitempty"`
	Metric                Metric   `yaml:"metric" json:"metric,omitempty"`
	MaxDelta              *float64 `yaml:"max_delta" json:"max_delta,omitempty"`
	Confidence            float64  `yaml:"confidence" json:"confidence,omitempty"`
	FailureLimit          int      `yaml:"failure_limit" json:"failure_limit,omitempty"`
	ConsecutiveErrorLimit *int     `yaml:"consecutive_error_limit" json:"consecutive_error_limit,omitempty"`
	Steps                 []int    `yaml:"steps" json:"steps,omitempty"`
	BakeSamples           int      `yaml:"bake_samples" json:"bake_samples,omitempty"`
	BlockOnOpenDrift      *bool    `yaml:"block_on_open_drift" json:"block_on_open_drift,omitempty"`
	Interval              Duration `yaml:"interval" json:"interval,omitempty"`
}

// Defaults of a GateSpec's fields that Gate leaves to its caller.
const (
	DefaultMaxDelta              = 0.01
	DefaultConsecutiveErrorLimit = 4
	DefaultBlockOnOpenDrift      = true
)

// Bounds of GateSpec.Interval.
const (
	MinInterval = time.Millisecond
	MaxInterval = time.Minute
)

// FieldError is a problem with one field of a GateSpec. Field names it as a spec's
// YAML and the admin API's JSON both write it.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Resolve returns the gate s states, with every absent field defaulted, and the
// evaluation interval. The error joins a *FieldError (wrapping ErrInvalid) per bad
// field; regression says the gated model is a regression, for which accuracy and
// logloss mean nothing.
func (s GateSpec) Resolve(regression bool) (Gate, time.Duration, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %w", ErrInvalid, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}))
	}
	g := Gate{MinSamples: s.MinSamples, Metric: s.Metric, Confidence: s.Confidence, FailureLimit: s.FailureLimit,
		Steps: append([]int(nil), s.Steps...), BakeSamples: s.BakeSamples,
		MaxDelta: DefaultMaxDelta, ConsecutiveErrorLimit: DefaultConsecutiveErrorLimit, BlockOnOpenDrift: DefaultBlockOnOpenDrift}
	if s.MaxDelta != nil {
		g.MaxDelta = *s.MaxDelta
	}
	if s.ConsecutiveErrorLimit != nil {
		g.ConsecutiveErrorLimit = *s.ConsecutiveErrorLimit
	}
	if s.BlockOnOpenDrift != nil {
		g.BlockOnOpenDrift = *s.BlockOnOpenDrift
	}
	g = g.WithDefaults()
	switch {
	case g.MinSamples < 1:
		bad("min_samples", "must be at least 1, got %d", g.MinSamples)
	case g.BakeSamples < 1:
		bad("bake_samples", "must be at least 1, got %d", g.BakeSamples)
	}
	if !g.Metric.valid() {
		names := make([]string, 0, 4)
		for _, m := range Metrics() {
			names = append(names, string(m))
		}
		bad("metric", "%q is not one of %s", g.Metric, strings.Join(names, ", "))
	} else if regression && g.Metric.Classification() {
		bad("metric", "%s does not fit a regression model; use mae or rmse", g.Metric)
	}
	if !(g.MaxDelta >= 0) || math.IsInf(g.MaxDelta, 0) {
		bad("max_delta", "must be a finite number ≥ 0, got %v", g.MaxDelta)
	}
	if !(g.Confidence >= 0.5 && g.Confidence < 1) {
		bad("confidence", "must be in [0.5, 1), got %v", g.Confidence)
	}
	if g.FailureLimit < 0 {
		bad("failure_limit", "must not be negative, got %d", g.FailureLimit)
	}
	if g.ConsecutiveErrorLimit < 0 {
		bad("consecutive_error_limit", "must not be negative, got %d", g.ConsecutiveErrorLimit)
	}
	if err := validSteps(g.Steps); err != "" {
		bad("steps", "%s", err)
	}
	interval := s.Interval.D()
	if interval == 0 {
		interval = DefaultInterval
	}
	if interval < MinInterval || interval > MaxInterval {
		bad("interval", "must be between %s and %s, got %s", MinInterval, MaxInterval, interval)
	}
	if len(errs) > 0 {
		return Gate{}, 0, errors.Join(errs...)
	}
	return g, interval, nil
}

// validSteps says what is wrong with steps ("" when nothing).
func validSteps(steps []int) string {
	prev := 0
	for _, p := range steps {
		if p <= prev || p > 100 {
			return fmt.Sprintf("%v must increase strictly within 1..100", steps)
		}
		prev = p
	}
	if prev != 100 {
		return fmt.Sprintf("%v must end at 100", steps)
	}
	return ""
}

// FieldErrors returns the *FieldError values err joins, in order.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(e error) {
		if fe, ok := e.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			if x := u.Unwrap(); x != nil {
				walk(x)
			}
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

// Duration is a time.Duration written as a Go duration string ("1s", "250ms") in
// YAML and JSON.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	return d.parse(n.Value)
}

// MarshalYAML writes a duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if len(b) < 2 || b[0] != '"' {
		return fmt.Errorf("duration %s is not a string such as \"1s\"", b)
	}
	return d.parse(s)
}

// MarshalJSON writes a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).String() + `"`), nil
}

func (d *Duration) parse(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 1s or 250ms", s)
	}
	*d = Duration(v)
	return nil
}
