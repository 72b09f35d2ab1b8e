// Package streams generates seeded synthetic event streams for binary classification,
// with optional concept drift, for driftline's producer, demo, tests and benchmarks.
//
// Three concepts are available, each as in River's synthetic datasets:
//
//   - "sea": SEA concepts (Street & Kim, 2001). Three features uniform in [0, 10]; the
//     label is 1 when f0 + f1 <= θ, with θ = 8, 9, 7 or 9.5 for variants 0 to 3. The
//     third feature is irrelevant.
//   - "hyperplane": rotating hyperplane (Hulten, Spencer & Domingos, 2001). d features
//     uniform in [0, 1]; the label is 1 when Σ wᵢxᵢ >= ½ Σ wᵢ. With MagChange > 0 the
//     first DriftFeatures weights move by MagChange per event and reverse direction with
//     probability Sigma, as River's Hyperplane does (incremental drift).
//   - "agrawal": the loan data of Agrawal, Imielinski & Swami (1993), with its ten
//     classification functions 0 to 9 and its perturbation, as River 0.26.1 implements
//     them (river/datasets/synth/agrawal.py).
//
// A Drift switches the stream from concept A to concept B at an event index, abruptly,
// or gradually with the sigmoid of River's ConceptDriftStream. The same seed always gives
// the same stream, and a Drift never changes which random numbers are drawn, so a stream
// with drift has the same features as the one without; only its labels differ.
//
// Reference: W. N. Street and Y. Kim, "A streaming ensemble algorithm (SEA) for
// large-scale classification", KDD 2001. G. Hulten, L. Spencer and P. Domingos, "Mining
// time-changing data streams", KDD 2001. R. Agrawal, T. Imielinski and A. Swami,
// "Database mining: a performance perspective", IEEE TKDE 5(6), 1993.
package streams

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Event is one synthetic event. The label is not part of the event's JSON; it travels
// separately to the labels topic (AppendLabelJSON).
type Event struct {
	ID      string    // unique in a stream: "e-<seed>-<index>"
	Time    time.Time // Config.Start + index*Config.Step, UTC
	UserID  string    // "u-004211", from a pool of Config.Users users
	Email   string    // PII derived from UserID: "user4211@example.com"
	Phone   string    // PII derived from UserID: "+1-555-ddd-dddd"
	Country string    // ISO 3166 code, independent of the label
	Device  string    // ios, android or web, independent of the label
	Channel string    // organic, paid, referral or email, independent of the label
	// F holds the concept's numeric attributes first (SEA: F[0..2]; Hyperplane:
	// F[0..d-1]; Agrawal: salary, commission, age, elevel, car, zipcode, hvalue, hyears,
	// loan in F[0..8]); the other slots hold seeded noise that does not affect the label.
	F     [10]float64
	Label int // 0 or 1
}

// Concept names accepted by Config.Concept.
const (
	ConceptSEA        = "sea"
	ConceptHyperplane = "hyperplane"
	ConceptAgrawal    = "agrawal"
)

// DriftKind says how a stream moves from concept A to concept B.
type DriftKind string

// Drift kinds. The empty kind means DriftNone.
const (
	DriftNone    DriftKind = "none"
	DriftAbrupt  DriftKind = "abrupt"
	DriftGradual DriftKind = "gradual"
)

// Drift describes one concept change.
type Drift struct {
	Kind DriftKind
	// Position is the index of the event (from 0) where the change happens: the first
	// event of concept B for an abrupt drift, the midpoint for a gradual one.
	Position int64
	// Width is the length of a gradual drift: event t comes from concept B with
	// probability 1/(1+exp(-4(t-Position)/Width)), as in River's ConceptDriftStream.
	// It must be positive for a gradual drift and is ignored otherwise.
	Width int64
}

// DefaultStart is the time of the first event when Config.Start is zero.
var DefaultStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Config configures a Generator. Zero values take the defaults stated per field.
type Config struct {
	Concept string // ConceptSEA, ConceptHyperplane or ConceptAgrawal; required
	Seed    uint64
	Drift   Drift
	// Noise is the probability, in [0, 0.5], that a label is flipped.
	Noise float64
	// Start is the time of event 0 (default DefaultStart); Step the time between
	// events (default 10ms).
	Start time.Time
	Step  time.Duration
	// Users is the size of the user pool (default 10,000, at most 1,000,000).
	Users int

	// Variant is concept A: the SEA variant 0..3 or the Agrawal function 0..9.
	// DriftVariant is concept B. When it equals Variant it defaults to
	// (Variant+2)%4 for SEA and (Variant+4)%10 for Agrawal: SEA 0→2, Agrawal 0→4.
	// For the hyperplane, concept B uses concept A's weights rotated by d/2 places.
	Variant, DriftVariant int

	// Hyperplane: Features is d (default 10, at most 10); DriftFeatures the number of
	// weights that move (default 2); MagChange the change per event (default 0: none);
	// Sigma the probability of reversing a weight's direction (0 means 0.1).
	Features, DriftFeatures int
	MagChange, Sigma        float64

	// Perturbation is Agrawal's perturbation fraction in [0, 1] (River's perturbation,
	// default 0): after labelling, each numeric attribute moves by up to ±Perturbation
	// of its range. Other concepts ignore it.
	Perturbation float64

	// Shift is a covariate shift: from event Shift.From on, F[Shift.Feature] is
	// moved by Shift.Delta after the label is drawn, so the label does not change
	// (a feature drift, not a concept drift). The zero Shift moves nothing.
	Shift Shift
}

// Shift moves one feature of every event from an index on.
type Shift struct {
	Feature int     // index into Event.F
	Delta   float64 // added to the feature
	From    int64   // first event shifted
}

var seaThresholds = [4]float64{8, 9, 7, 9.5}

// withDefaults returns c with zero values replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.Drift.Kind == "" {
		c.Drift.Kind = DriftNone
	}
	if c.Start.IsZero() {
		c.Start = DefaultStart
	}
	if c.Step == 0 {
		c.Step = 10 * time.Millisecond
	}
	if c.Users == 0 {
		c.Users = 10_000
	}
	if c.DriftVariant == c.Variant {
		switch c.Concept {
		case ConceptSEA:
			c.DriftVariant = (c.Variant + 2) % len(seaThresholds)
		case ConceptAgrawal:
			c.DriftVariant = (c.Variant + 4) % len(agrawalFuncs)
		}
	}
	if c.Concept == ConceptHyperplane {
		if c.Features == 0 {
			c.Features = 10
		}
		if c.DriftFeatures == 0 {
			c.DriftFeatures = 2
		}
		if c.Sigma == 0 {
			c.Sigma = 0.1
		}
	}
	return c
}

// Validate reports whether c, after defaults, describes a stream.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	switch c.Concept {
	case ConceptSEA:
		errs = append(errs, checkVariant("sea", c.Variant, c.DriftVariant, len(seaThresholds)))
	case ConceptAgrawal:
		errs = append(errs, checkVariant("agrawal", c.Variant, c.DriftVariant, len(agrawalFuncs)))
		if !(c.Perturbation >= 0 && c.Perturbation <= 1) {
			errs = append(errs, fmt.Errorf("agrawal perturbation %v not in [0, 1]", c.Perturbation))
		}
	case ConceptHyperplane:
		if c.Features < 1 || c.Features > len(Event{}.F) {
			errs = append(errs, fmt.Errorf("hyperplane features %d not in [1, 10]", c.Features))
		}
		if c.DriftFeatures < 0 || c.DriftFeatures > c.Features {
			errs = append(errs, fmt.Errorf("hyperplane drift features %d not in [0, %d]", c.DriftFeatures, c.Features))
		}
		if c.MagChange < 0 || math.IsNaN(c.MagChange) || math.IsInf(c.MagChange, 0) {
			errs = append(errs, fmt.Errorf("hyperplane mag change %v is not a finite number >= 0", c.MagChange))
		}
		if !(c.Sigma >= 0 && c.Sigma <= 1) {
			errs = append(errs, fmt.Errorf("hyperplane sigma %v not in [0, 1]", c.Sigma))
		}
	default:
		errs = append(errs, fmt.Errorf("unknown concept %q (want sea, hyperplane or agrawal)", c.Concept))
	}
	if !(c.Noise >= 0 && c.Noise <= 0.5) {
		errs = append(errs, fmt.Errorf("noise %v not in [0, 0.5]", c.Noise))
	}
	if c.Step < 0 {
		errs = append(errs, fmt.Errorf("step %s is negative", c.Step))
	}
	if c.Users < 1 || c.Users > 1_000_000 {
		errs = append(errs, fmt.Errorf("users %d not in [1, 1000000]", c.Users))
	}
	switch c.Drift.Kind {
	case DriftNone, DriftAbrupt:
	case DriftGradual:
		if c.Drift.Width <= 0 {
			errs = append(errs, fmt.Errorf("gradual drift width %d is not positive", c.Drift.Width))
		}
	default:
		errs = append(errs, fmt.Errorf("unknown drift kind %q (want none, abrupt or gradual)", c.Drift.Kind))
	}
	if sh := c.Shift; sh.Delta != 0 && (sh.Feature < 0 || sh.Feature >= len(Event{}.F) || sh.From < 0 || math.IsNaN(sh.Delta) || math.IsInf(sh.Delta, 0)) {
		errs = append(errs, fmt.Errorf("shift of feature %d by %v from event %d: want a feature in [0, 9], a finite delta and a start ≥ 0", sh.Feature, sh.Delta, sh.From))
	}
	if c.Drift.Kind != DriftNone && c.Drift.Position < 0 {
		errs = append(errs, fmt.Errorf("drift position %d is negative", c.Drift.Position))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid stream config: %w", err)
	}
	return nil
}

func checkVariant(concept string, a, b, n int) error {
	if a < 0 || a >= n || b < 0 || b >= n {
		return fmt.Errorf("%s variants %d→%d not in [0, %d]", concept, a, b, n-1)
	}
	return nil
}

var (
	countries = [...]string{"US", "GB", "DE", "FR", "IN", "BR", "JP", "CA"}
	devices   = [...]string{"ios", "android", "web"}
	channels  = [...]string{"organic", "paid", "referral", "email"}
)

type user struct{ id, email, phone string }

// Generator produces one stream. It is not safe for concurrent use; make one Generator
// per goroutine, with different seeds for different streams.
type Generator struct {
	cfg   Config
	rng   *rand.Rand
	users []user
	index int64
	idBuf []byte

	// hyperplane state
	weights, direction [10]float64
}

// NewGenerator validates cfg and returns a Generator positioned at event 0.
func NewGenerator(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	g := &Generator{
		cfg: cfg,
		rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
	}
	g.users = make([]user, cfg.Users)
	for i := range g.users {
		// A fixed bijection of 0..9,999,999 spreads phone numbers over the range.
		p := (uint64(i)*7_919_993 + 1_234_567) % 10_000_000
		g.users[i] = user{
			id:    fmt.Sprintf("u-%06d", i),
			email: fmt.Sprintf("user%d@example.com", i),
			phone: fmt.Sprintf("+1-555-%03d-%04d", p/10_000, p%10_000),
		}
	}
	if cfg.Concept == ConceptHyperplane {
		for i := range cfg.Features {
			g.weights[i] = g.rng.Float64()
		}
		for i := range cfg.DriftFeatures {
			g.direction[i] = 1
		}
	}
	g.idBuf = strconv.AppendUint(append(g.idBuf, "e-"...), cfg.Seed, 10)
	g.idBuf = append(g.idBuf, '-')
	return g, nil
}

// Index returns the index of the event the next call to Next fills.
func (g *Generator) Index() int64 { return g.index }

// Next fills e with the next event of the stream. It overwrites every field of e and
// allocates only the ID string.
func (g *Generator) Next(e *Event) {
	t := g.index
	g.index++
	r := g.rng
	n := len(g.idBuf)
	g.idBuf = strconv.AppendInt(g.idBuf, t, 10)
	e.ID = string(g.idBuf)
	g.idBuf = g.idBuf[:n]
	e.Time = g.cfg.Start.Add(time.Duration(t) * g.cfg.Step)
	u := &g.users[r.IntN(len(g.users))]
	e.UserID, e.Email, e.Phone = u.id, u.email, u.phone
	e.Country = countries[r.IntN(len(countries))]
	e.Device = devices[r.IntN(len(devices))]
	e.Channel = channels[r.IntN(len(channels))]

	// Every draw happens whatever the drift, so that drift changes labels only.
	conceptB := g.inConceptB(t, r.Float64())
	var label bool
	switch g.cfg.Concept {
	case ConceptSEA:
		label = g.sea(e, conceptB)
	case ConceptHyperplane:
		label = g.hyperplane(e, conceptB)
	case ConceptAgrawal:
		label = g.agrawal(e, conceptB)
	}
	if r.Float64() < g.cfg.Noise {
		label = !label
	}
	if sh := g.cfg.Shift; sh.Delta != 0 && t >= sh.From {
		e.F[sh.Feature] += sh.Delta
	}
	e.Label = 0
	if label {
		e.Label = 1
	}
}

// inConceptB decides whether event t comes from concept B, given a uniform draw u.
func (g *Generator) inConceptB(t int64, u float64) bool {
	d := g.cfg.Drift
	switch d.Kind {
	case DriftAbrupt:
		return t >= d.Position
	case DriftGradual:
		x := -4 * float64(t-d.Position) / float64(d.Width)
		return u < 1/(1+math.Exp(x))
	}
	return false
}

func (g *Generator) sea(e *Event, conceptB bool) bool {
	for i := range e.F {
		e.F[i] = 10 * g.rng.Float64()
	}
	v := g.cfg.Variant
	if conceptB {
		v = g.cfg.DriftVariant
	}
	return e.F[0]+e.F[1] <= seaThresholds[v]
}

func (g *Generator) hyperplane(e *Event, conceptB bool) bool {
	d := g.cfg.Features
	for i := range e.F {
		e.F[i] = g.rng.Float64()
	}
	shift := 0
	if conceptB {
		shift = d / 2
	}
	var sum, total float64
	for i := range d {
		w := g.weights[(i+shift)%d]
		sum += w * e.F[i]
		total += w
	}
	label := sum >= 0.5*total
	for i := range g.cfg.DriftFeatures {
		g.weights[i] += g.direction[i] * g.cfg.MagChange
		if g.rng.Float64() < g.cfg.Sigma {
			g.direction[i] = -g.direction[i]
		}
	}
	return label
}

// ParseShift reads a Shift written FEATURE=DELTA@EVENT, e.g. f2=3@150000:
// f2 moves by 3 from event 150,000 on. "" is no shift.
func ParseShift(s string) (Shift, error) {
	if s == "" {
		return Shift{}, nil
	}
	name, rest, ok1 := strings.Cut(s, "=")
	delta, at, ok2 := strings.Cut(rest, "@")
	feature, err1 := strconv.Atoi(strings.TrimPrefix(name, "f"))
	d, err2 := strconv.ParseFloat(delta, 64)
	from, err3 := strconv.ParseInt(at, 10, 64)
	if !ok1 || !ok2 || !strings.HasPrefix(name, "f") || errors.Join(err1, err2, err3) != nil {
		return Shift{}, fmt.Errorf("%q is not FEATURE=DELTA@EVENT, e.g. f2=3@150000", s)
	}
	sh := Shift{Feature: feature, Delta: d, From: from}
	if err := (Config{Concept: ConceptSEA, Shift: sh}).Validate(); err != nil {
		return Shift{}, err
	}
	return sh, nil
}

// AttributeRange is the range [lo, hi] of attribute i of Event.F for a
// concept: SEA's features lie in [0, 10], the hyperplane's in [0, 1],
// Agrawal's in the ranges its doc states (salary, commission, age, …); the
// noise slots in [0, 10] (SEA) or [0, 1]. A consumer scaling attributes
// into other ranges keeps the concept's function of them.
func AttributeRange(concept string, i int) (lo, hi float64) {
	switch concept {
	case ConceptSEA:
		return 0, 10
	case ConceptAgrawal:
		if i < len(agrawalRanges) {
			return agrawalRanges[i][0], agrawalRanges[i][1]
		}
	}
	return 0, 1
}

// agrawalRanges are Agrawal's attributes' ranges, in Event.F order.
var agrawalRanges = [...][2]float64{
	{20_000, 150_000}, {0, 85_000}, {20, 80}, {0, 4}, {1, 20}, {0, 8}, {0, 1_200_000}, {1, 30}, {0, 500_000},
}
