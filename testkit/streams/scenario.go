package streams

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/driftline/driftline/pipeline"
)

// ScenarioEvent is one event of a Scenario: its JSON, its Kafka key, and
// its label record, which arrives LabelScale times the producer's label
// delay after it, or never when Label is nil.
type ScenarioEvent struct {
	ID         string
	Key, Value []byte
	Label      []byte
	LabelScale float64
}

// Scenario generates the events of one example pipeline of
// deploy/examples, with one scripted drift. It is not safe for concurrent
// use.
type Scenario interface {
	// Next fills e with the next event; event ids are "e-<seed>-<index>".
	Next(e *ScenarioEvent)
	// Index is the index of the event the next call to Next fills.
	Index() int64
	// PII is the set of every plaintext personal data value the scenario
	// writes, which no output may carry.
	PII() *LeakSet
}

// The scenarios, named as their specs in deploy/examples.
const (
	ScenarioCustomerService    = "customer-service"
	ScenarioFinancialSentiment = "financial-sentiment"
	ScenarioClickThrough       = "click-through"
)

// ScenarioNames lists the scenarios NewScenario knows.
func ScenarioNames() []string {
	return []string{ScenarioCustomerService, ScenarioFinancialSentiment, ScenarioClickThrough}
}

// NewScenario returns the scenario of that name, seeded, with its drift
// at event driftAt:
//   - customer-service: chat messages about billing, shipping, returns,
//     cancellation and complaints, a fifth of them with personal data in
//     the text (e-mail, phones, cards, IBANs, IPs, Chinese resident ids),
//     labelled escalate (1 for cancellation and complaints); at driftAt
//     the intent mix moves from 25% to 70% cancellations and complaints;
//   - financial-sentiment: headlines about eight tickers, labelled with
//     their sentiment (1 positive); at driftAt the news on ACME turns from
//     75% to 10% positive and its share of the volume grows from 34% to
//     60%;
//   - click-through: ad impressions (user, ad, site, device, position)
//     with clicks from a logistic concept over hashed identities; a
//     click's label arrives 1-3 label delays later, a non-click's (the
//     attribution window closing) 5 later, and 5% of labels never come;
//     at driftAt a campaign moves traffic to mobile web (its share from
//     25% to 55%) and mobile web's click rate triples (before driftAt
//     the stream draws exactly what it would without a drift).
func NewScenario(name string, seed uint64, driftAt int64) (Scenario, error) {
	base := scenarioBase{seed: seed, driftAt: driftAt, rng: rand.New(rand.NewPCG(seed, 0x7363656e6172696f)), pii: NewLeakSet()}
	base.idPrefix = "e-" + strconv.FormatUint(seed, 10) + "-"
	switch name {
	case ScenarioCustomerService:
		s := &customerService{scenarioBase: base, text: NewPIIText(seed)}
		s.customers = make([]string, 2000)
		for i := range s.customers {
			s.customers[i] = fmt.Sprintf("c-%05d", i)
			s.pii.Add(s.customers[i])
		}
		return s, nil
	case ScenarioFinancialSentiment:
		return &financialSentiment{scenarioBase: base}, nil
	case ScenarioClickThrough:
		s := &clickThrough{scenarioBase: base}
		return s, nil
	}
	return nil, fmt.Errorf("no scenario %q (want one of %v)", name, ScenarioNames())
}

type scenarioBase struct {
	seed     uint64
	driftAt  int64
	index    int64
	rng      *rand.Rand
	pii      *LeakSet
	idPrefix string
}

func (b *scenarioBase) Index() int64  { return b.index }
func (b *scenarioBase) PII() *LeakSet { return b.pii }
func (b *scenarioBase) drifted() bool { return b.index >= b.driftAt }

// begin starts event e: its id, and the JSON object's first fields.
func (b *scenarioBase) begin(e *ScenarioEvent) []byte {
	e.ID = b.idPrefix + strconv.FormatInt(b.index, 10)
	v := append(e.Value[:0], `{"event_id":`...)
	v = pipeline.AppendJSONString(v, e.ID)
	v = append(v, `,"ts":"`...)
	v = DefaultStart.Add(time.Duration(b.index)*10*time.Millisecond).AppendFormat(v, time.RFC3339Nano)
	return append(v, '"')
}

func appendField(v []byte, name, value string) []byte {
	v = append(v, ',')
	v = pipeline.AppendJSONString(v, name)
	v = append(v, ':')
	return pipeline.AppendJSONString(v, value)
}

func labelJSON(id string, label int) []byte {
	v := append([]byte(`{"event_id":`), pipeline.AppendJSONString(nil, id)...)
	return append(append(v, `,"label":`...), strconv.Itoa(label)+"}"...)
}

type customerService struct {
	scenarioBase
	text      *PIIText
	customers []string
}

var csIntents = []struct {
	name     string
	escalate int
	lines    []string
}{
	{"billing", 0, []string{"I was charged twice for my last invoice", "Why is my bill higher this month", "Can you explain the fee on my statement", "I need a copy of my invoice for March", "My payment did not go through yesterday"}},
	{"shipping", 0, []string{"Where is my parcel, the tracking has not moved", "My order has not arrived yet", "Can I change the delivery address", "The courier left the package at the wrong door", "How long does express shipping take"}},
	{"returns", 0, []string{"How do I return a jacket that does not fit", "I want to exchange the shoes for a bigger size", "Is the return label free", "The refund for my return is still pending", "Can I return an item bought on sale"}},
	{"cancel", 1, []string{"Please cancel my subscription today", "I want to close my account", "Cancel my order immediately, I found it cheaper", "Stop the renewal and cancel everything", "I am leaving, cancel the contract"}},
	{"complaint", 1, []string{"This is the third time the product broke, I am furious", "Your support has been useless, I want a manager", "Terrible service, I will report you", "The item arrived damaged and nobody answers", "I am very disappointed and want compensation"}},
}

// intent mixes before and after the drift (billing, shipping, returns,
// cancel, complaint).
var (
	csMixBefore = []float64{0.25, 0.30, 0.20, 0.12, 0.13}
	csMixAfter  = []float64{0.10, 0.10, 0.10, 0.40, 0.30}
)

func drawMix(r *rand.Rand, mix []float64) int {
	u := r.Float64()
	for i, p := range mix {
		if u < p {
			return i
		}
		u -= p
	}
	return len(mix) - 1
}

func (s *customerService) Next(e *ScenarioEvent) {
	r := s.rng
	mix := csMixBefore
	if s.drifted() {
		mix = csMixAfter
	}
	intent := csIntents[drawMix(r, mix)]
	msg := s.text.Message(intent.lines, 5)
	for _, sp := range msg.Spans {
		s.pii.Add(msg.Text[sp.Start:sp.End])
	}
	customer := s.customers[r.IntN(len(s.customers))]
	v := s.begin(e)
	v = appendField(v, "customer_id", customer)
	v = appendField(v, "channel", [...]string{"chat", "email", "app"}[r.IntN(3)])
	v = appendField(v, "message", msg.Text)
	e.Value = append(v, '}')
	e.Key = append(e.Key[:0], customer...)
	label := intent.escalate
	if r.Float64() < 0.03 {
		label = 1 - label
	}
	e.Label, e.LabelScale = labelJSON(e.ID, label), 1
	s.index++
}

type financialSentiment struct{ scenarioBase }

var (
	fsTickers = []string{"ACME", "GLOBX", "INITECH", "UMBRL", "STARK", "WAYNE", "TYRELL", "CYBRD"}
	fsWeights = []float64{0.34, 0.10, 0.10, 0.10, 0.09, 0.09, 0.09, 0.09}
	// After the drift ACME, in the news, is 60% of the volume.
	fsWeightsAfter = []float64{0.60, 0.06, 0.06, 0.06, 0.055, 0.055, 0.055, 0.055}
	fsPositive     = []string{"%s beats earnings estimates", "%s raises full-year guidance", "%s shares rally on strong demand", "analysts upgrade %s to buy",
		"%s announces record revenue", "%s wins major contract", "%s expands into new markets", "%s dividend increased"}
	fsNegative = []string{"%s misses earnings estimates", "%s cuts guidance amid weak demand", "%s shares slump after warning", "analysts downgrade %s to sell",
		"%s faces regulatory probe", "%s recalls flagship product", "%s announces layoffs", "%s CFO resigns unexpectedly"}
	fsSources = []string{"wire", "blog", "exchange", "social"}
)

func (s *financialSentiment) Next(e *ScenarioEvent) {
	r := s.rng
	weights := fsWeights
	if s.drifted() {
		weights = fsWeightsAfter
	}
	k := drawMix(r, weights)
	ticker := fsTickers[k]
	pPositive := 0.6
	if k == 0 {
		pPositive = 0.75
		if s.drifted() {
			pPositive = 0.10
		}
	}
	positive := r.Float64() < pPositive
	templates := fsNegative
	if positive {
		templates = fsPositive
	}
	headline := fmt.Sprintf(templates[r.IntN(len(templates))], ticker)
	minute := s.index / 6000 // one minute of event time at 10ms per event
	v := s.begin(e)
	v = appendField(v, "ticker", ticker)
	v = appendField(v, "ticker_minute", ticker+"@"+strconv.FormatInt(minute, 10))
	v = appendField(v, "source", fsSources[r.IntN(len(fsSources))])
	v = appendField(v, "headline", headline)
	e.Value = append(v, '}')
	e.Key = append(e.Key[:0], ticker...)
	label := 0
	if positive {
		label = 1
	}
	if r.Float64() < 0.02 {
		label = 1 - label
	}
	e.Label, e.LabelScale = labelJSON(e.ID, label), 1
	s.index++
}

type clickThrough struct{ scenarioBase }

var ctrDevices = []string{"ios", "android", "mobile_web", "desktop"}

// After the drift, a share ctrMobileWebCampaign of the impressions is
// mobile web (ctrDevices[ctrMobileWeb]) before the uniform draw.
const (
	ctrMobileWeb         = 2
	ctrMobileWebCampaign = 0.4
)

// ctrEffect is a seeded effect in [-1, 1] of one identity on the click
// logit: a hash, so that the concept is a fixed function of the ids.
func ctrEffect(kind string, id uint64) float64 {
	h := uint64(14695981039346656037)
	for _, c := range []byte(kind) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	h = (h ^ id) * 1099511628211
	h ^= h >> 29
	return float64(h%2001)/1000 - 1
}

func (s *clickThrough) Next(e *ScenarioEvent) {
	r := s.rng
	user := uint64(r.IntN(20000))
	ad := uint64(r.IntN(60))
	site := uint64(math.Floor(math.Pow(r.Float64(), 2) * 200)) // a few sites get most traffic
	device := r.IntN(len(ctrDevices))
	if s.drifted() && r.Float64() < ctrMobileWebCampaign {
		device = ctrMobileWeb
	}
	position := 1 + r.IntN(5)
	logit := -2.2 + 0.8*ctrEffect("ad", ad) + 0.6*ctrEffect("site", site) + 0.2*ctrEffect("user", user) - 0.25*float64(position-1)
	if device == ctrMobileWeb && s.drifted() {
		logit += math.Log(3)
	}
	click := r.Float64() < 1/(1+math.Exp(-logit))
	userID := "u-" + strconv.FormatUint(user, 10)
	s.pii.Add(userID)
	v := s.begin(e)
	v = appendField(v, "user_id", userID)
	v = appendField(v, "ad_id", "ad-"+strconv.FormatUint(ad, 10))
	v = appendField(v, "site", "site-"+strconv.FormatUint(site, 10)+".example")
	v = appendField(v, "device", ctrDevices[device])
	v = append(v, `,"position":`...)
	v = strconv.AppendInt(v, int64(position), 10)
	e.Value = append(v, '}')
	e.Key = append(e.Key[:0], userID...)
	switch {
	case r.Float64() < 0.05:
		e.Label = nil // the label never comes
	case click:
		e.Label, e.LabelScale = labelJSON(e.ID, 1), 1+2*r.Float64()
	default:
		e.Label, e.LabelScale = labelJSON(e.ID, 0), 5
	}
	s.index++
}

// LeakSet holds plaintext values that must not appear in outputs, and
// finds them in records: one pass over a record with a lookup of each
// 4-byte window. It is not safe for concurrent use while values are
// added.
type LeakSet struct {
	byAnchor map[uint32][]string
	n        int
}

// NewLeakSet returns an empty set.
func NewLeakSet() *LeakSet { return &LeakSet{byAnchor: map[uint32][]string{}} }

func anchor(s string) uint32 {
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

// Add adds v (values under 4 bytes are ignored).
func (l *LeakSet) Add(v string) {
	if len(v) < 4 {
		return
	}
	a := anchor(v)
	if slices.Contains(l.byAnchor[a], v) {
		return
	}
	l.byAnchor[a] = append(l.byAnchor[a], strings.Clone(v))
	l.n++
}

// Len is the number of values.
func (l *LeakSet) Len() int { return l.n }

// Match reports whether b contains any value of the set.
func (l *LeakSet) Match(b []byte) bool {
	for i := 0; i+4 <= len(b); i++ {
		vs, ok := l.byAnchor[uint32(b[i])|uint32(b[i+1])<<8|uint32(b[i+2])<<16|uint32(b[i+3])<<24]
		if !ok {
			continue
		}
		for _, v := range vs {
			if len(b)-i >= len(v) && string(b[i:i+len(v)]) == v {
				return true
			}
		}
	}
	return false
}
