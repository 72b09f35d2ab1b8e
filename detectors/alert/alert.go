// Package alert turns drift signals into alerts that do not cry wolf: a
// minimum sample size before any signal counts, hysteresis (warning → drift →
// resolved), a cool-down per subject, and one drift alert per episode.
//
// Gate is a pure state machine: the caller passes the time with every signal,
// and publishing the alerts it returns is the caller's job. It is not safe for
// concurrent use.
//
// # Alert JSON schema (alerts topic)
//
// Alerts are published as one JSON object per message; field names are stable:
//
//	{
//	  "detector":      string, detector name ("ADWIN", "KS", "PSI", …)
//	  "subject":       string, feature name, "prediction" or "error"
//	  "model_version": string, model version watched ("" when none)
//	  "statistic":     number, the detector statistic at the last signal
//	  "threshold":     number, the threshold it is compared with
//	  "window":        integer, samples behind the statistic
//	  "severity":      "warning" | "critical"
//	  "first_seen":    RFC 3339 time the episode opened
//	  "last_seen":     RFC 3339 time of the last signal of the episode
//	  "dedupe_key":    string, identical for every message of one episode
//	  "state":         "warning" | "drift" | "resolved"
//	}
//
// One episode yields at most one message per state it enters: an optional
// "warning", at most one "drift" (the alert), and a "resolved".
package alert

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The subjects an alert names besides a feature: the model's predictions
// (score distribution) and its errors (the prequential error stream).
const (
	SubjectPrediction = "prediction"
	SubjectError      = "error"
)

// State is the state of a drift episode.
type State string

// Episode states, in the order an episode moves through them.
const (
	StateWarning  State = "warning"
	StateDrift    State = "drift"
	StateResolved State = "resolved"
)

// Severity is how urgent an alert is.
type Severity string

// Severities: a warning needs watching, a drift needs action.
const (
	SeverityWarning  Severity = "warning"
	SeverityCritical Severity = "critical"
)

// Alert is one message about a drift episode. See the package doc for its
// JSON schema.
type Alert struct {
	Detector     string    `json:"detector"`
	Subject      string    `json:"subject"`
	ModelVersion string    `json:"model_version"`
	Statistic    float64   `json:"statistic"`
	Threshold    float64   `json:"threshold"`
	Window       uint64    `json:"window"`
	Severity     Severity  `json:"severity"`
	FirstSeen    time.Time `json:"first_seen"`
	LastSeen     time.Time `json:"last_seen"`
	DedupeKey    string    `json:"dedupe_key"`
	State        State     `json:"state"`
}

// Signal is one observation of a detector on a subject.
type Signal struct {
	Detector     string
	Subject      string
	ModelVersion string
	Statistic    float64
	Threshold    float64
	// Window is the number of samples behind the statistic.
	Window uint64
	// Drift and Warning are what the detector or test reported.
	Drift   bool
	Warning bool
	// At is the time of the observation; it must not go backwards per subject.
	At time.Time
}

// ErrInvalidConfig is wrapped by GateConfig validation errors.
var ErrInvalidConfig = errors.New("invalid alert gate config")

// GateConfig holds the hygiene rules. Start from DefaultGateConfig.
type GateConfig struct {
	// MinSamples: signals whose Window is smaller are ignored. Default 1000.
	MinSamples uint64
	// ConfirmDrift is how many consecutive drift signals open a drift.
	// Default 1.
	ConfirmDrift int
	// ResolveAfter is how many consecutive clear signals (neither drift nor
	// warning) resolve an open episode. Default 5.
	ResolveAfter int
	// CoolDown is how long after a resolution no new episode opens for the
	// same detector, subject and model version. Default 15 minutes.
	CoolDown time.Duration
}

// DefaultGateConfig returns the defaults listed on GateConfig.
func DefaultGateConfig() GateConfig {
	return GateConfig{MinSamples: 1000, ConfirmDrift: 1, ResolveAfter: 5, CoolDown: 15 * time.Minute}
}

// Validate reports the first invalid rule, wrapping ErrInvalidConfig.
func (c GateConfig) Validate() error {
	switch {
	case c.ConfirmDrift < 1:
		return fmt.Errorf("confirm drift %d < 1: %w", c.ConfirmDrift, ErrInvalidConfig)
	case c.ResolveAfter < 1:
		return fmt.Errorf("resolve after %d < 1: %w", c.ResolveAfter, ErrInvalidConfig)
	case c.CoolDown < 0:
		return fmt.Errorf("cool-down %v < 0: %w", c.CoolDown, ErrInvalidConfig)
	}
	return nil
}

type key struct{ detector, subject, modelVersion string }

// episode is the per-key state; open is false while no episode is open.
type episode struct {
	open          bool
	alert         Alert
	driftStreak   int
	clearStreak   int
	coolDownUntil time.Time
}

// Gate applies the hygiene rules per (detector, subject, model version).
type Gate struct {
	cfg      GateConfig
	episodes map[key]*episode
}

// NewGate validates cfg and returns a gate with no open episode.
func NewGate(cfg GateConfig) (*Gate, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Gate{cfg: cfg, episodes: make(map[key]*episode)}, nil
}

// Observe feeds one signal and returns the alert to publish, if any:
//   - a "warning" when a warning opens an episode;
//   - a "drift" when ConfirmDrift consecutive drift signals arrive in an
//     episode that has not drifted yet (opening it if needed): the one alert
//     of the episode;
//   - a "resolved" when ResolveAfter consecutive clear signals close an open
//     episode, which starts the cool-down.
//
// Signals below MinSamples, and signals during a cool-down, change nothing.
func (g *Gate) Observe(s Signal) (Alert, bool) {
	if s.Window < g.cfg.MinSamples {
		return Alert{}, false
	}
	k := key{s.Detector, s.Subject, s.ModelVersion}
	e := g.episodes[k]
	if e == nil {
		e = &episode{}
		g.episodes[k] = e
	}
	if !e.open && s.At.Before(e.coolDownUntil) {
		return Alert{}, false
	}
	if s.Drift {
		e.driftStreak++
	} else {
		e.driftStreak = 0
	}
	if s.Drift || s.Warning {
		e.clearStreak = 0
	} else {
		e.clearStreak++
	}

	if e.open {
		e.alert.Statistic, e.alert.Threshold, e.alert.Window, e.alert.LastSeen = s.Statistic, s.Threshold, s.Window, s.At
	}
	switch {
	case e.driftStreak >= g.cfg.ConfirmDrift && (!e.open || e.alert.State == StateWarning):
		if !e.open {
			e.open = true
			e.alert = newAlert(s)
		}
		e.alert.State, e.alert.Severity = StateDrift, SeverityCritical
		return e.alert, true
	case s.Warning && !e.open:
		e.open = true
		e.alert = newAlert(s)
		e.alert.State, e.alert.Severity = StateWarning, SeverityWarning
		return e.alert, true
	case e.open && e.clearStreak >= g.cfg.ResolveAfter:
		resolved := e.alert
		resolved.State = StateResolved
		*e = episode{coolDownUntil: s.At.Add(g.cfg.CoolDown)}
		return resolved, true
	}
	return Alert{}, false
}

// Open returns the open episodes' latest alerts, ordered by DedupeKey, for
// gauges and status pages.
func (g *Gate) Open() []Alert {
	var out []Alert
	for _, e := range g.episodes {
		if e.open {
			out = append(out, e.alert)
		}
	}
	slices.SortFunc(out, func(a, b Alert) int { return strings.Compare(a.DedupeKey, b.DedupeKey) })
	return out
}

func newAlert(s Signal) Alert {
	return Alert{
		Detector: s.Detector, Subject: s.Subject, ModelVersion: s.ModelVersion,
		Statistic: s.Statistic, Threshold: s.Threshold, Window: s.Window,
		FirstSeen: s.At, LastSeen: s.At,
		DedupeKey: fmt.Sprintf("%s/%s/%s/%d", s.Detector, s.Subject, s.ModelVersion, s.At.UnixNano()),
	}
}
