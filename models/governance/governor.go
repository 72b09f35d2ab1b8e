// Package governance holds driftline's control loops over the model
// registry: the governor (retraining and gated rollout of each model), the
// retrain job and its row sources, and the audit forwarder. Each loop has
// one owner with Run(ctx); they receive the registry and small interfaces,
// never a Kafka or Redis client they build.
package governance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/driftline/driftline/detectors/alert"
	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/models/rollout"
)

// whoGovernor names the governor in the registry's audit log.
const whoGovernor = "governor"

// AdminRequests is what an operator asked of a model through the admin
// API: a pause of its rollout, a gate policy that overrides the spec's,
// and retrain requests. models/adminapi implements it.
type AdminRequests interface {
	// Paused reports whether an operator paused model's rollout.
	Paused(ctx context.Context, model string) (bool, error)
	// Policy returns the gate an admin set for model (ok false: none).
	Policy(ctx context.Context, model string) (g rollout.Gate, ok bool, err error)
	// RetrainRequests returns up to n retrain requests (of every model)
	// after the cursor after, oldest first; after "" returns none and the
	// cursor of the newest request, so that a loop starting now does not
	// replay older requests.
	RetrainRequests(ctx context.Context, after string, n int) (reqs []registry.RetrainRequest, cursor string, err error)
}

// Config configures a Governor. Registry, Model, Holder, Gate and
// ChampionVersion are required.
type Config struct {
	Registry *registry.Registry
	// Model is the registry name of the governed model.
	Model string
	// Holder names this instance on the model's governor lease.
	Holder string
	// Gate is the spec's rollout gate (an admin's policy overrides it).
	Gate rollout.Gate
	// Interval is the tick (default rollout.DefaultInterval); the lease
	// expires after three intervals without renewal.
	Interval time.Duration
	// ChampionVersion returns the version the champion arm serves now.
	ChampionVersion func() string
	// Admin, when set, gives the pause flag, the policy and retrain
	// requests.
	Admin AdminRequests
	// Retrain, when set, trains candidates on the triggers below.
	Retrain *RetrainJob
	// Alerts, when set, returns the alerts received since its previous
	// call (AlertInbox.Drain).
	Alerts func() []alert.Alert
	// RetrainOnDrift: error-drift alerts trigger retrains.
	RetrainOnDrift bool
	// RetrainEvery is the retrain schedule (0: none).
	RetrainEvery time.Duration
	// SinceDrift makes a drift trigger wait for, and train on, the rows
	// labelled after the alert.
	SinceDrift bool
	// Decision is the served models' decision rule, which the accuracy of
	// an outcome is counted by; a zero Threshold takes models.Threshold.
	Decision models.Decision
	// Log defaults to slog.Default(); Now to time.Now.
	Log *slog.Logger
	Now func() time.Time
}

// Validate checks the config; its errors name the field at fault.
func (c *Config) Validate() error {
	switch {
	case c.Registry == nil:
		return errors.New("governance: no registry")
	case c.Model == "":
		return errors.New("governance: no model name")
	case c.Holder == "":
		return errors.New("governance: no lease holder name")
	case c.ChampionVersion == nil:
		return errors.New("governance: no champion version func")
	case c.Interval < 0:
		return fmt.Errorf("governance: negative interval %s", c.Interval)
	case c.RetrainEvery < 0:
		return fmt.Errorf("governance: negative retrain schedule %s", c.RetrainEvery)
	case !(c.Decision.Threshold >= 0 && c.Decision.Threshold < 1):
		return fmt.Errorf("governance: decision threshold %v not in (0, 1)", c.Decision.Threshold)
	}
	if err := c.Gate.Validate(); err != nil {
		return fmt.Errorf("rollout.gate: %w", err)
	}
	return nil
}

// New validates cfg and builds the governor. It does no I/O.
func New(cfg Config) (*Governor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Governor{reg: cfg.Registry, model: cfg.Model, holder: cfg.Holder, gate: cfg.Gate,
		interval: cfg.Interval, log: cfg.Log, now: cfg.Now, championVersion: cfg.ChampionVersion,
		retrain: cfg.Retrain, every: cfg.RetrainEvery, sinceDrift: cfg.SinceDrift, decision: cfg.Decision}
	if g.decision.Threshold == 0 {
		g.decision.Threshold = models.Threshold
	}
	if g.interval == 0 {
		g.interval = rollout.DefaultInterval
	}
	if g.log == nil {
		g.log = slog.Default()
	}
	if g.now == nil {
		g.now = time.Now
	}
	g.status.queued = -1
	g.failures = OutageLog{Log: g.log, Msg: "governor"}
	g.flushFailures = OutageLog{Log: g.log, Msg: "governor: flush outcomes"}
	if a := cfg.Admin; a != nil {
		g.policy = func(ctx context.Context) (rollout.Gate, bool, error) { return a.Policy(ctx, cfg.Model) }
		g.paused = func(ctx context.Context) (bool, error) { return a.Paused(ctx, cfg.Model) }
	}
	if cfg.Alerts != nil || cfg.Admin != nil {
		g.source = &retrainSource{model: cfg.Model, alerts: cfg.Alerts, onDrift: cfg.RetrainOnDrift, admin: cfg.Admin}
	}
	return g, nil
}

// Governor is the control loop of a model's continual learning. Every
// instance with a rollout block runs one; every interval it
//   - flushes the outcomes its label join saw (per served version: the
//     champion's, the canary's and the shadow's, which learns prequentially)
//     into the registry's shared outcome sums, so the measurement covers
//     every instance's labels;
//   - tries to take or renew the model's governor lease. Only the holder
//     goes on, so one instance per model decides; a lease expires after
//     three intervals without renewal and another instance takes over,
//     starting the candidate's analysis again from the shadow phase, or
//     resuming the bake of a champion promoted but not yet stable;
//   - queues the error-drift alerts and operators' retrain requests it
//     sees in the registry (registry.QueueRetrain), every instance alike,
//     so that a trigger outlives the instance that saw it; the holder runs
//     a retrain job (RetrainJob) for each queued trigger and for the
//     schedule, which registers a candidate and puts it in shadow, and
//     renews the lease while the job runs: a job whose lease is lost is
//     cancelled, and its trigger stays queued for the next holder;
//   - measures the candidate (the canary alias, else the shadow alias)
//     against the champion on the gate's metric and asks a
//     rollout.Controller what to do. Both are measured from the first
//     interval after the candidate's first outcome: in shadow, on the same
//     joined labels, compared label by label (the label join pairs the
//     shadow's outcome with the champion's served score of the label:
//     ObservePairedOutcome); the candidate on each step's own predictions,
//     the champion on all of its own since;
//   - applies the Decision to the registry (advance: canary alias and
//     traffic share; promote: champion alias, with the "baking" and
//     "previous" marks until stable; rollback: the candidate's aliases
//     removed, traffic 0, the previous champion restored) and
//     appends it to the audit log with who "governor" and why its Reason.
//
// Alias and traffic moves go through the registry, so every instance's
// rollout watcher serves them within the watch bound. The gate is the
// spec's rollout.gate unless an admin set a policy for the model (read when
// a rollout starts); an operator's pause flag pauses advancement (rollback
// stays automatic). Promotion waits while a feature-drift alert (a subject
// other than "error" and "prediction") is open: the features are every
// version's inputs.
//
// Holds are audited only when their What or failure counts change, so a
// steady wait does not flood the log. ObserveOutcome is safe for
// concurrent use; Run is called once.
type Governor struct {
	reg      *registry.Registry
	model    string
	holder   string // this instance's name on the lease
	gate     rollout.Gate
	interval time.Duration
	log      *slog.Logger
	now      func() time.Time
	// championVersion is the version the champion arm serves now.
	championVersion func() string
	// policy returns an admin's gate for the model (ok false: none); paused
	// reports the operator's pause flag. Either may be nil.
	policy func(ctx context.Context) (rollout.Gate, bool, error)
	paused func(ctx context.Context) (bool, error)

	retrain *RetrainJob    // nil: no retraining
	source  *retrainSource // nil: no triggers
	// every is the retrain schedule (0: none); sinceDrift makes a drift
	// trigger wait for, and train on, the rows labelled after the alert.
	every      time.Duration
	sinceDrift bool
	// decision is the rule an outcome's class is taken by.
	decision models.Decision

	mu      sync.Mutex
	pending map[string]registry.OutcomeSums // not yet flushed, by version
	// skipped counts outcomes ObserveOutcome dropped (a non-finite score
	// or label); dropped counts outcomes a flush gave up on because the
	// registry refused them as invalid (they would be refused forever).
	skipped, dropped int64

	leader       bool
	leaseSent    time.Time // when the last TryLease that found the lease held was sent
	nextSchedule time.Time
	// unqueued holds triggers seen but not yet queued in the registry (it
	// did not answer); retryAfter delays a queued since-drift trigger whose
	// job found too few rows (a row count from CountSince is an upper
	// bound).
	unqueued     []registry.QueuedRetrain
	retryAfter   map[string]time.Time
	ctrl         *rollout.Controller
	candidate    int64  // registry version under rollout, 0 for none
	prevChampion int64  // champion alias when the rollout began (0: unset)
	champVersion string // served champion version when the rollout began
	// The champion's evidence is its outcome sums since champBase. Until
	// the candidate has evidence of its own, champBase follows the
	// champion's sums at every measurement; at the first measurement that
	// finds the candidate's outcomes, both windows open (champAligned),
	// and the candidate's outcomes until then are left out (stepBase),
	// being those of part of an interval only. A shadow scores labels only
	// once the data plane has loaded it, and a champion measured from the
	// rollout's begin would count the labels joined before that (during a
	// drift's dip, say), which the candidate never saw.
	champBase    registry.OutcomeSums
	champAligned bool
	// The candidate's evidence: candPrior sums the outcomes of the steps it
	// went through (shadow, canary steps); the current step's are those of
	// stepSeries (OutcomeSeries) since stepBase, read at the step's first
	// measurement (stepBaseRead).
	candPrior    registry.OutcomeSums
	stepSeries   string
	stepBase     registry.OutcomeSums
	stepBaseRead bool
	openFeatures map[string]bool
	wasPaused    bool
	lastHold     string
	status       statusBox // the last rollout status (status.go)
	// failures and flushFailures log failed ticks and flushes without
	// flooding the log while Redis is down.
	failures, flushFailures OutageLog
}

// retrainRetryIntervals is how many governor intervals a since-drift
// retrain that found too few rows waits before it tries again.
const retrainRetryIntervals = 10

// governorLease names the model's governor lease in the registry.
func governorLease(model string) string { return "governor." + model }

// OutcomeSeries names the outcome sums that the outcome of a prediction of
// version served by arm (a registry alias name: champion, canary or
// shadow, which are the data plane's arm names) adds to: one series per
// rollout step. The champion's are the version's own ("3"); the shadow's
// "3/shadow"; the canary's one per share of keys it served, "3/canary/50".
// An outcome whose arm is unknown ("": cached without it) goes to
// "3/unknown", which no gate reads.
func OutcomeSeries(version, arm string, canaryPercent int) string {
	switch arm {
	case registry.AliasChampion:
		return version
	case registry.AliasShadow:
		return version + "/shadow"
	case registry.AliasCanary:
		return version + "/canary/" + strconv.Itoa(canaryPercent)
	}
	return version + "/unknown"
}

// ObserveOutcome adds one joined label (its score and label) to the
// unflushed sums of series: OutcomeSeries of the version, arm and canary
// share that served the prediction. It is the label join's outcome hook.
// An outcome whose score or label is not finite is skipped (and counted):
// it would make the shared sums non-finite, which the registry refuses.
func (g *Governor) ObserveOutcome(series string, score, label float64) {
	d, ok := outcomeDeltaAt(score, label, g.decision)
	g.add(series, d, ok)
}

// ObservePairedOutcome is ObserveOutcome for a shadow's outcome of a label
// that the champion served with championScore: it also adds the
// difference of the two outcomes to the series' paired sums, which the
// gate's paired test reads in the shadow phase. A pair whose champion
// outcome is not finite adds the shadow's outcome alone.
func (g *Governor) ObservePairedOutcome(series string, score, championScore, label float64) {
	d, ok := outcomeDeltaAt(score, label, g.decision)
	if champ, champOK := outcomeDeltaAt(championScore, label, g.decision); ok && champOK {
		d.Paired = pairedDelta(d, champ)
	}
	g.add(series, d, ok)
}

// add adds one outcome's delta d to series' unflushed sums, or counts it
// skipped (ok false).
func (g *Governor) add(series string, d registry.OutcomeSums, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !ok {
		g.skipped++
		return
	}
	if g.pending == nil {
		g.pending = map[string]registry.OutcomeSums{}
	}
	g.pending[series] = g.pending[series].Add(d)
}

// pairedDelta is one pair's contribution to the paired sums: the
// differences cand - champ of two single outcomes' deltas, and their
// squares.
func pairedDelta(cand, champ registry.OutcomeSums) registry.PairedSums {
	c := cand.Correct - champ.Correct
	ll, ae, se := cand.LogLoss-champ.LogLoss, cand.AbsErr-champ.AbsErr, cand.SqErr-champ.SqErr
	return registry.PairedSums{N: 1, CorrectDiff: c, CorrectDiffSq: c * c,
		LogLossDiff: ll, LogLossDiffSq: ll * ll, AbsErrDiff: ae, AbsErrDiffSq: ae * ae, SqErrDiff: se, SqErrDiffSq: se * se}
}

// outcomeDelta is outcomeDeltaAt at the default threshold, for a finite
// outcome.
func outcomeDelta(score, label float64) registry.OutcomeSums {
	d, _ := outcomeDeltaAt(score, label, models.Decision{Threshold: models.Threshold})
	return d
}

// outcomeDeltaAt is one outcome's contribution to every gate metric: the
// absolute and squared error of the score; and, for a binary label (0 or
// 1), right when decision's class of the score is the label, positive
// when the label is 1, and the log loss of the score clipped to
// [1e-15, 1-1e-15]. A regression label (any other value) adds no log loss,
// which is defined for binary labels only (the formula would go negative
// and the registry refuse the sums). A multi-class model's score is its
// predicted class: its outcome adds only whether it is right. ok is
// false, and the delta zero, when the score or the label is not finite,
// or the squared error overflows.
func outcomeDeltaAt(score, label float64, decision models.Decision) (d registry.OutcomeSums, ok bool) {
	ae := math.Abs(score - label)
	se := ae * ae
	if math.IsNaN(ae) || math.IsInf(se*se, 0) {
		return registry.OutcomeSums{}, false
	}
	d = registry.OutcomeSums{N: 1}
	if decision.MultiClass() {
		if float64(decision.Class(score)) == label {
			d.Correct = 1
		}
		return d, true
	}
	if label == 0 || label == 1 {
		if float64(decision.Class(score)) == label {
			d.Correct = 1
		}
		if label == 1 {
			d.Positives = 1
		}
		p := min(max(score, 1e-15), 1-1e-15)
		ll := -(label*math.Log(p) + (1-label)*math.Log(1-p))
		d.LogLoss, d.LogLossSq = ll, ll*ll
	}
	d.AbsErr, d.AbsErrSq = ae, ae*ae
	d.SqErr, d.SqErrSq = se, se*se
	return d, true
}

// statsOf turns outcome sums into the gate's Stats for metric.
func statsOf(m rollout.Metric, s registry.OutcomeSums) rollout.Stats {
	if s.N <= 0 {
		return rollout.Stats{}
	}
	st := rollout.Stats{N: s.N, Positives: s.Positives}
	switch m {
	case rollout.MetricLogLoss:
		st.Value, st.SD = meanSD(s.N, s.LogLoss, s.LogLossSq)
	case rollout.MetricMAE:
		st.Value, st.SD = meanSD(s.N, s.AbsErr, s.AbsErrSq)
	case rollout.MetricRMSE:
		var mse float64
		mse, st.SD = meanSD(s.N, s.SqErr, s.SqErrSq)
		st.Value = math.Sqrt(mse)
	default:
		st.Value = float64(s.Correct) / float64(s.N)
	}
	return st
}

// meanSD is the mean and the sample standard deviation (0 under 2) of n
// values whose sum and sum of squares are given; n ≥ 1.
func meanSD(n int64, sum, sumSq float64) (mean, sd float64) {
	nf := float64(n)
	mean = sum / nf
	if n < 2 {
		return mean, 0
	}
	return mean, math.Sqrt(max(0, (sumSq-nf*mean*mean)/(nf-1)))
}

// pairedOf turns paired sums into the gate's paired evidence for metric:
// the mean improvement per pair (the candidate's correct minus the
// champion's; the champion's loss minus the candidate's) and its SD. nil
// under 2 pairs, and for rmse (not a mean).
//
// For accuracy it is Agresti and Min's (2005) adjusted estimate: half a
// pair added to each cell of the 2×2 table of right and wrong, which with
// b pairs only the candidate got right and c only the champion got right
// gives the difference (b - c)/(n + 2) with variance ((b + c + 1) -
// (b - c)²/(n + 2))/(n + 2)², returned as the SD of n pairs. Where the two
// versions disagree on few labels or none, the plain estimate's variance
// goes to zero and its bounds with it; the adjusted one keeps bounds about
// 1/n wide, as the rule of three says the data allow.
func pairedOf(m rollout.Metric, p registry.PairedSums) *rollout.Paired {
	if p.N < 2 {
		return nil
	}
	paired := func(sum, sumSq float64) *rollout.Paired {
		mean, sd := meanSD(p.N, sum, sumSq)
		return &rollout.Paired{N: p.N, Mean: mean, SD: sd}
	}
	switch m {
	case rollout.MetricAccuracy:
		diff, discordant, n2 := float64(p.CorrectDiff), float64(p.CorrectDiffSq), float64(p.N)+2
		variance := max(0, (discordant+1)-diff*diff/n2) / (n2 * n2)
		return &rollout.Paired{N: p.N, Mean: diff / n2, SD: math.Sqrt(variance * float64(p.N))}
	case rollout.MetricLogLoss:
		return paired(-p.LogLossDiff, p.LogLossDiffSq)
	case rollout.MetricMAE:
		return paired(-p.AbsErrDiff, p.AbsErrDiffSq)
	}
	return nil
}

// flush adds the unflushed outcomes to the registry's shared sums; on
// failure they stay for the next flush, except when the registry refuses
// them as invalid (registry.ErrInvalid): those would be refused at every
// later flush too, and block the valid outcomes that join them, so they
// are dropped, counted and logged instead.
func (g *Governor) flush(ctx context.Context) error {
	g.mu.Lock()
	batch := g.pending
	g.pending = nil
	g.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := g.reg.AddOutcomes(ctx, g.model, batch)
	if errors.Is(err, registry.ErrInvalid) && len(batch) > 1 {
		// Find the version at fault: the others go on.
		for v, sums := range batch {
			g.flushOne(ctx, v, sums)
		}
		return err
	}
	if errors.Is(err, registry.ErrInvalid) {
		g.mu.Lock()
		for _, sums := range batch {
			g.dropped += sums.N
		}
		g.mu.Unlock()
		return fmt.Errorf("dropped outcomes the registry refused: %w", err)
	}
	if err != nil {
		g.mu.Lock()
		for v, s := range g.pending {
			batch[v] = batch[v].Add(s)
		}
		g.pending = batch
		g.mu.Unlock()
		return err
	}
	return nil
}

// flushOne is flush for one version's sums, after a flush of several
// was refused as invalid.
func (g *Governor) flushOne(ctx context.Context, version string, sums registry.OutcomeSums) {
	err := g.reg.AddOutcomes(ctx, g.model, map[string]registry.OutcomeSums{version: sums})
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case errors.Is(err, registry.ErrInvalid):
		g.dropped += sums.N
	case err != nil:
		if g.pending == nil {
			g.pending = map[string]registry.OutcomeSums{}
		}
		g.pending[version] = g.pending[version].Add(sums)
	}
}

// OutcomesDropped is the number of outcomes the governor did not count:
// skipped by ObserveOutcome (a non-finite score or label) or refused by
// the registry as invalid.
func (g *Governor) OutcomesDropped() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.skipped + g.dropped
}

// Run ticks every interval until ctx ends, then flushes and gives up the
// lease. A failed tick is logged and retried on the next; Run returns nil
// when ctx ends.
func (g *Governor) Run(ctx context.Context) error {
	t := time.NewTicker(g.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if err := g.flush(stopCtx); err != nil {
				g.log.Warn("governor: flush outcomes at stop", "err", err)
			}
			if g.leader {
				_ = g.reg.ReleaseLease(stopCtx, governorLease(g.model), g.holder)
			}
			return nil
		case <-t.C:
			err := g.tick(ctx)
			switch {
			case ctx.Err() != nil:
			case err != nil:
				g.failures.Failed(err, "model", g.model)
			default:
				g.failures.OK("model", g.model)
			}
		}
	}
}

// tick flushes outcomes and, on the lease holder, runs the retrain
// triggers and one rollout evaluation. A tick that fails (Redis is down:
// each call fails within the client's timeout) is retried at the next;
// what it had gathered (outcomes, triggers) is kept for it.
func (g *Governor) tick(ctx context.Context) error {
	if err := g.flush(ctx); err != nil {
		g.flushFailures.Failed(err, "model", g.model)
	} else {
		g.flushFailures.OK("model", g.model)
	}
	if g.source != nil {
		g.takeTriggers(ctx)
	}
	sent := time.Now()
	held, err := g.reg.TryLease(ctx, governorLease(g.model), g.holder, g.leaseTTL())
	if err != nil {
		return err
	}
	if !held {
		g.dropLeadership()
		return nil
	}
	g.leaseSent = sent
	if !g.leader {
		g.log.Info("governor: lease taken; this instance governs", "model", g.model, "holder", g.holder)
		g.leader = true
	}
	if lost := g.runRetrains(ctx); lost {
		g.dropLeadership()
		return nil
	}
	return g.evaluate(ctx)
}

// leaseTTL is the governor lease's time to live: three intervals.
func (g *Governor) leaseTTL() time.Duration { return 3 * g.interval }

// dropLeadership forgets what the lease holder kept: the rollout in
// progress (the next holder takes it up from the registry) and the retry
// delays of queued triggers.
func (g *Governor) dropLeadership() {
	if g.leader {
		g.log.Warn("governor: lease lost; another instance governs", "model", g.model)
	}
	g.leader, g.ctrl, g.candidate, g.retryAfter = false, nil, 0, nil
	g.recordIdle(false)
}

// trackDrift keeps the set of open feature-drift episodes.
func (g *Governor) trackDrift(seen []alert.Alert) {
	if g.openFeatures == nil {
		g.openFeatures = map[string]bool{}
	}
	for _, a := range seen {
		if a.Subject == alert.SubjectError || a.Subject == alert.SubjectPrediction {
			continue
		}
		if a.State == alert.StateResolved {
			delete(g.openFeatures, a.DedupeKey)
		} else if a.State == alert.StateDrift {
			g.openFeatures[a.DedupeKey] = true
		}
	}
}

// evaluate picks the candidate, measures it and applies the decision.
func (g *Governor) evaluate(ctx context.Context) error {
	set, err := g.reg.Aliases(ctx, g.model)
	if errors.Is(err, registry.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	cand := set.Versions[registry.AliasCanary]
	if cand == 0 {
		cand = set.Versions[registry.AliasShadow]
	}
	if baking := set.Versions[registry.AliasBaking]; cand == 0 && baking != 0 && baking == set.Versions[registry.AliasChampion] {
		cand = baking // a promotion whose bake another lease holder left unfinished
	}
	if g.ctrl != nil {
		st := g.ctrl.State().Phase
		active := st != rollout.PhaseStable && st != rollout.PhaseRolledBack
		stillThere := set.Versions[registry.AliasCanary] == g.candidate || set.Versions[registry.AliasShadow] == g.candidate ||
			set.Versions[registry.AliasChampion] == g.candidate
		if active && stillThere {
			cand = g.candidate // an active rollout finishes before the next starts
		}
	}
	if cand == 0 {
		g.recordIdle(true)
		return nil
	}
	if cand != g.candidate {
		switch {
		case cand == set.Versions[registry.AliasChampion] && cand == set.Versions[registry.AliasBaking] && set.Versions[registry.AliasPrevious] != 0:
			if err := g.resumeBake(ctx, cand, set); err != nil {
				return err
			}
		case cand == set.Versions[registry.AliasChampion]:
			g.recordIdle(true)
			return nil // already champion: nothing to roll out
		default:
			if err := g.begin(ctx, cand, set); err != nil {
				return err
			}
		}
		if set, err = g.reg.Aliases(ctx, g.model); err != nil { // begin may move aliases
			return err
		}
	}
	if err := g.syncPause(ctx); err != nil {
		return err
	}
	champTotal, err := g.reg.Outcomes(ctx, g.model, g.champVersion)
	if err != nil {
		return err
	}
	candSums, err := g.candidateEvidence(ctx)
	if err != nil {
		return err
	}
	if !g.champAligned {
		g.champBase = champTotal
		if candSums.N > 0 {
			// The candidate scores now: both windows open here. Its
			// outcomes so far came during part of the last interval only,
			// and are left out with the champion's of that interval.
			g.stepBase = g.stepBase.Add(candSums.Sub(g.candPrior))
			candSums, g.champAligned = g.candPrior, true
		}
	}
	champ := champTotal.Sub(g.champBase)
	metric := g.ctrl.Gate().Metric
	candStats, champStats := statsOf(metric, candSums), statsOf(metric, champ)
	if g.ctrl.State().Phase == rollout.PhaseShadow {
		// The shadow scores the labels the champion served: compare them
		// label by label. A canary serves other keys than the champion, so
		// its steps (and the bake) compare the arms as independent samples.
		candStats.Paired = pairedOf(metric, candSums.Paired)
	}
	d := g.ctrl.Evaluate(candStats, champStats, len(g.openFeatures) > 0, g.now())
	g.followStep(candSums)
	err = g.apply(ctx, d, set)
	g.recordDecision(d, candStats, champStats)
	return err
}

// begin starts the rollout of version cand: a new controller on the
// admin's policy gate, else the spec's, and the outcome baselines.
func (g *Governor) begin(ctx context.Context, cand int64, set registry.AliasSet) error {
	gate := g.gate
	if g.policy != nil {
		p, ok, err := g.policy(ctx)
		if err != nil {
			return err
		}
		if ok {
			gate = p
		}
	}
	ctrl, err := rollout.NewController(gate, whoGovernor)
	if err != nil {
		return err
	}
	g.ctrl, g.candidate, g.lastHold, g.wasPaused = ctrl, cand, "", false
	g.prevChampion = set.Versions[registry.AliasChampion]
	g.champVersion, g.champBase, g.champAligned = g.championVersion(), registry.OutcomeSums{}, false
	g.candPrior, g.stepSeries = registry.OutcomeSums{}, ""
	g.followStep(registry.OutcomeSums{})
	return g.startInShadow(ctx, set)
}

// resumeBake takes over the bake of champion cand, promoted by another
// lease holder that stopped before the rollout was stable: the controller
// enters the promoted phase, the bake counts the champion's outcomes from
// now, and it is compared with everything the previous champion (the
// "previous" alias) was measured on. A regression still rolls back to it.
func (g *Governor) resumeBake(ctx context.Context, cand int64, set registry.AliasSet) error {
	if err := g.begin(ctx, cand, set); err != nil {
		return err
	}
	g.prevChampion = set.Versions[registry.AliasPrevious]
	g.champVersion, g.champBase, g.champAligned = strconv.FormatInt(g.prevChampion, 10), registry.OutcomeSums{}, true
	why := fmt.Sprintf("version %d was promoted and is baking; this instance took over the governor lease", cand)
	d, err := g.ctrl.Promote(whoGovernor, why, g.now())
	if err != nil {
		return err
	}
	g.followStep(registry.OutcomeSums{})
	d.What = "rollout.bake.resume"
	return g.audit(ctx, d)
}

// startInShadow puts a new candidate where the controller starts it: in
// the shadow alias, serving no traffic. A candidate handed over as the
// canary (an operator's promote --alias canary, or a rollout a previous
// lease holder left half done) moves from the canary alias to the shadow
// alias, and the canary share goes to 0, so that it is measured in shadow
// before it serves a key.
func (g *Governor) startInShadow(ctx context.Context, set registry.AliasSet) error {
	why := fmt.Sprintf("version %d starts its rollout in shadow", g.candidate)
	if set.Versions[registry.AliasCanary] == g.candidate {
		if set.Versions[registry.AliasShadow] != g.candidate {
			if _, err := g.reg.MoveAlias(ctx, registry.AliasMove{Model: g.model, Alias: registry.AliasShadow, Version: g.candidate,
				Expect: set.Versions[registry.AliasShadow], Who: whoGovernor, Why: why}); err != nil {
				return err
			}
		}
		if _, err := g.reg.MoveAlias(ctx, registry.AliasMove{Model: g.model, Alias: registry.AliasCanary, Expect: g.candidate,
			Who: whoGovernor, Why: why}); err != nil {
			return err
		}
	}
	if set.TrafficSet && set.CanaryPercent != 0 || !set.TrafficSet && set.Versions[registry.AliasCanary] == g.candidate {
		if _, err := g.reg.SetTraffic(ctx, registry.TrafficMove{Model: g.model, Percent: 0, Who: whoGovernor, Why: why}); err != nil {
			return err
		}
	}
	return nil
}

// candidateEvidence is the candidate's outcome sums for the gate: those of
// the steps it went through, plus the current step's own, so that a step
// advances only on outcomes of predictions it served (see followStep).
func (g *Governor) candidateEvidence(ctx context.Context) (registry.OutcomeSums, error) {
	s, err := g.reg.Outcomes(ctx, g.model, g.stepSeries)
	if err != nil {
		return registry.OutcomeSums{}, err
	}
	if !g.stepBaseRead {
		g.stepBase, g.stepBaseRead = s, true
	}
	return g.candPrior.Add(s.Sub(g.stepBase)), nil
}

// followStep moves the candidate's evidence to the step the controller is
// in now, when it moved: measured (the evidence so far) becomes the prior,
// and the new step counts the outcomes of its own series (OutcomeSeries of
// the candidate's arm and canary share in that step) from its first
// measurement on. The outcomes of an earlier step's predictions whose
// labels come later count for no step: the controller's "new samples at
// this step" are the step's own.
func (g *Governor) followStep(measured registry.OutcomeSums) {
	st := g.ctrl.State()
	v := strconv.FormatInt(g.candidate, 10)
	var series string
	switch st.Phase {
	case rollout.PhaseShadow:
		series = OutcomeSeries(v, registry.AliasShadow, 0)
	case rollout.PhaseCanary:
		series = OutcomeSeries(v, registry.AliasCanary, st.Percent)
	default:
		series = OutcomeSeries(v, registry.AliasChampion, 0)
	}
	if series == g.stepSeries {
		return
	}
	if g.stepSeries != "" {
		g.candPrior = measured
	}
	g.stepSeries, g.stepBaseRead = series, false
}

// syncPause applies a change of the operator's pause flag to the
// controller, audited as the controller's pause or resume decision.
func (g *Governor) syncPause(ctx context.Context) error {
	if g.paused == nil {
		return nil
	}
	p, err := g.paused(ctx)
	if err != nil || p == g.wasPaused {
		return err
	}
	g.wasPaused = p
	st := g.ctrl.State().Phase
	if st == rollout.PhaseStable || st == rollout.PhaseRolledBack {
		return nil
	}
	var d rollout.Decision
	if p {
		d, err = g.ctrl.Pause(whoGovernor, "operator pause flag set", g.now())
	} else {
		d, err = g.ctrl.Resume(whoGovernor, "operator pause flag cleared", g.now())
	}
	if err != nil {
		return err
	}
	return g.audit(ctx, d)
}

// audit appends d to the audit log with the candidate and champion.
func (g *Governor) audit(ctx context.Context, d rollout.Decision) error {
	details := d.Details()
	details["candidate_version"] = strconv.FormatInt(g.candidate, 10)
	details["champion_version"] = g.champVersion
	_, err := g.reg.AppendAudit(ctx, registry.Event{Who: whoGovernor, What: d.What, Model: g.model,
		Version: g.candidate, Why: d.Reason, When: d.When, Details: details})
	return err
}

// apply carries out d on the registry, and audits it.
func (g *Governor) apply(ctx context.Context, d rollout.Decision, set registry.AliasSet) error {
	if d.Action == rollout.ActionHold {
		key := fmt.Sprintf("%s|%s|%d|%d", d.What, d.Phase, d.Failures, d.ConsecutiveErrors)
		if key == g.lastHold {
			return nil
		}
		g.lastHold = key
	}
	if err := g.audit(ctx, d); err != nil {
		return err
	}
	move := func(alias string, to, expect int64) error {
		_, err := g.reg.MoveAlias(ctx, registry.AliasMove{Model: g.model, Alias: alias, Version: to, Expect: expect,
			Who: whoGovernor, Why: d.Reason, Details: map[string]string{"decision": d.What}})
		return err
	}
	drop := func(alias string) error { // remove alias when it names the candidate
		if set.Versions[alias] != g.candidate {
			return nil
		}
		return move(alias, 0, g.candidate)
	}
	traffic := func(percent int) error {
		if set.TrafficSet && set.CanaryPercent == percent {
			return nil
		}
		_, err := g.reg.SetTraffic(ctx, registry.TrafficMove{Model: g.model, Percent: percent, Who: whoGovernor, Why: d.Reason,
			Details: map[string]string{"decision": d.What, "candidate_version": strconv.FormatInt(g.candidate, 10)}})
		return err
	}
	switch d.Action {
	case rollout.ActionAdvance:
		if set.Versions[registry.AliasCanary] != g.candidate {
			if err := move(registry.AliasCanary, g.candidate, set.Versions[registry.AliasCanary]); err != nil {
				return err
			}
		}
		if err := traffic(d.Percent); err != nil {
			return err
		}
		return drop(registry.AliasShadow)
	case rollout.ActionPromote:
		if err := move(registry.AliasChampion, g.candidate, set.Versions[registry.AliasChampion]); err != nil {
			return err
		}
		if g.prevChampion != 0 {
			if err := move(registry.AliasPrevious, g.prevChampion, set.Versions[registry.AliasPrevious]); err != nil {
				return err
			}
		}
		if err := move(registry.AliasBaking, g.candidate, set.Versions[registry.AliasBaking]); err != nil {
			return err
		}
		if err := drop(registry.AliasCanary); err != nil {
			return err
		}
		if err := drop(registry.AliasShadow); err != nil {
			return err
		}
		return traffic(0)
	case rollout.ActionHold:
		if d.Phase == rollout.PhaseStable {
			return drop(registry.AliasBaking)
		}
	case rollout.ActionRollback:
		if err := drop(registry.AliasBaking); err != nil {
			return err
		}
		if err := drop(registry.AliasCanary); err != nil {
			return err
		}
		if err := drop(registry.AliasShadow); err != nil {
			return err
		}
		if err := traffic(0); err != nil {
			return err
		}
		if cur := set.Versions[registry.AliasChampion]; cur == g.candidate && g.prevChampion != 0 {
			// action=rollback, so that registry.PreviousChampion pops cur.
			if _, err := g.reg.MoveAlias(ctx, registry.AliasMove{Model: g.model, Alias: registry.AliasChampion, Version: g.prevChampion, Expect: cur,
				Who: whoGovernor, Why: d.Reason, Details: map[string]string{"decision": d.What, "action": "rollback"}}); err != nil {
				return err
			}
			return g.reg.SettleAfterRollback(ctx, g.model, whoGovernor, d.Reason)
		}
	}
	return nil
}
