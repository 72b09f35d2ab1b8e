package governance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/driftline/driftline/detectors/alert"
	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/registry"
)

const (
	// retrainBatch is how many rows one Learn call of a retrain job takes.
	retrainBatch = 256
	// whoRetrain names the retrain job in the registry's audit log.
	whoRetrain = "retrain"
)

// The retrain modes, recorded in a candidate's lineage.
const (
	RetrainModeReset = "reset"
	RetrainModeWarm  = "warm"
)

// ErrRetrainNoData: the row source holds too few labelled rows to retrain.
var ErrRetrainNoData = errors.New("retrain: too few labelled rows")

// RowSource is where a retrain job's training rows come from: the
// in-memory Window, or a replay of the input and labels topics. Its methods
// are safe for concurrent use.
type RowSource interface {
	// CountSince is how many labelled rows RowsSince(ctx, since) would
	// give, or an upper bound on it; cheap enough to call every tick.
	CountSince(ctx context.Context, since time.Time) (int, error)
	// RowsSince returns the labelled rows learned at or after since (zero:
	// every row the source keeps), oldest first, with labels and the
	// lineage source they came from.
	RowsSince(ctx context.Context, since time.Time) (models.Rows, []float32, registry.Source, error)
}

// Window is a bounded ring buffer of the most recent labelled rows
// (dense features, hashed features, label, when learned) that the label
// join taught the served arms (LabelJoin.OnLearned), oldest overwritten
// first. It is the recent window a retrain job trains on: the issue's
// "replay recent events and labels from Kafka offsets" is served from
// memory instead, so a retrain needs no second consumer of the input and
// labels topics, but the window is per instance, starts empty at each
// start, and holds only the labels this instance's label join consumed
// (its share of the labels topic's partitions). It is safe for concurrent
// use.
type Window struct {
	// topic is the input topic the rows came from, for lineage.
	topic     string
	mu        sync.Mutex
	numDense  int
	numHashed int
	size      int // capacity in rows
	n         int // rows held, ≤ size
	next      int // slot of the next row
	dense     []float32
	hashed    []int32
	labels    []float32
	at        []time.Time
}

// NewWindow makes a window of size rows (at least 1) of numDense dense and
// numHashed hashed features, whose rows came from the input topic (for
// lineage).
func NewWindow(topic string, size, numDense, numHashed int) *Window {
	size = max(size, 1)
	return &Window{topic: topic, size: size, numDense: numDense, numHashed: numHashed,
		dense: make([]float32, size*numDense), hashed: make([]int32, size*numHashed),
		labels: make([]float32, size), at: make([]time.Time, size)}
}

// Add copies rows and their labels in; rows of another layout are ignored.
// It fits the label join's OnLearned hook.
func (w *Window) Add(rows *models.Rows, y []float32) {
	w.addAt(rows, y, time.Now())
}

func (w *Window) addAt(rows *models.Rows, y []float32, now time.Time) {
	if rows.NumDense != w.numDense || rows.NumHashed != w.numHashed || len(y) < rows.N {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for r := 0; r < rows.N; r++ {
		s := w.next
		copy(w.dense[s*w.numDense:(s+1)*w.numDense], rows.Dense[r*w.numDense:(r+1)*w.numDense])
		copy(w.hashed[s*w.numHashed:(s+1)*w.numHashed], rows.Hashed[r*w.numHashed:(r+1)*w.numHashed])
		w.labels[s], w.at[s] = y[r], now
		w.next = (s + 1) % w.size
		w.n = min(w.n+1, w.size)
	}
}

// CountSince is LenSince (RowSource).
func (w *Window) CountSince(_ context.Context, since time.Time) (int, error) {
	return w.LenSince(since), nil
}

// RowsSince is rows, with the time span as the lineage source of the
// window's topic (RowSource).
func (w *Window) RowsSince(_ context.Context, since time.Time) (models.Rows, []float32, registry.Source, error) {
	rows, y, from, to := w.rows(since)
	return rows, y, registry.Source{Topic: w.topic, From: from.UTC(), To: to.UTC()}, nil
}

// Len is the number of rows held.
func (w *Window) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// LenSince is the number of rows held that were added at or after since.
func (w *Window) LenSince(since time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n - w.skipBefore(since)
}

// skipBefore is how many of the oldest rows were added before since (rows
// are added in time order). w.mu must be held.
func (w *Window) skipBefore(since time.Time) int {
	first := (w.next - w.n + w.size) % w.size
	return sort.Search(w.n, func(k int) bool { return !w.at[(first+k)%w.size].Before(since) })
}

// rows copies out the rows added at or after since (zero: all), oldest
// first, with the time span they cover.
func (w *Window) rows(since time.Time) (models.Rows, []float32, time.Time, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	skip := w.skipBefore(since)
	n := w.n - skip
	out := models.Rows{N: n, NumDense: w.numDense, NumHashed: w.numHashed,
		Dense: make([]float32, 0, n*w.numDense), Hashed: make([]int32, 0, n*w.numHashed)}
	y := make([]float32, 0, n)
	first := (w.next - w.n + w.size) % w.size
	var from, to time.Time
	for k := skip; k < w.n; k++ {
		s := (first + k) % w.size
		out.Dense = append(out.Dense, w.dense[s*w.numDense:(s+1)*w.numDense]...)
		out.Hashed = append(out.Hashed, w.hashed[s*w.numHashed:(s+1)*w.numHashed]...)
		y = append(y, w.labels[s])
		if k == skip {
			from = w.at[s]
		}
		to = w.at[s]
	}
	return out, y, from, to
}

// retrainTrigger is why a retrain job runs.
type retrainTrigger struct {
	// Kind is "drift" (an error-drift alert on the champion), "schedule"
	// (rollout.retrain.every) or "request" (an operator's retrain request
	// from the admin API).
	Kind string
	// Key is the alert's dedupe key, the schedule or the request's stream
	// ID: the Why of the shadow alias move.
	Key string
	// Reason is the alert or request, in words: the Why of the registration.
	Reason string
}

// RetrainConfig configures a RetrainJob. Registry, Model, NewLearner and
// Rows are required.
type RetrainConfig struct {
	Registry *registry.Registry
	Model    string
	// NewLearner gives the learner a job trains: a fresh one from the
	// spec (mode reset) or a copy of the serving champion (mode warm).
	NewLearner func() (models.Learner, error)
	// Mode is RetrainModeReset (the default) or RetrainModeWarm, for the
	// lineage.
	Mode string
	// Rows is where the training rows come from.
	Rows RowSource
	// Signature and SpecHash are recorded with each candidate.
	Signature registry.Signature
	SpecHash  string
	// MinRows is the fewest rows a job trains on (≥ 1); Holdout the newest
	// share held out to measure the candidate, in (0, 1). The spec's
	// rollout.retrain block gives their defaults.
	MinRows int
	Holdout float64
	// Profile, when set, gives the reference feature profile recorded in
	// each candidate's lineage (the drift monitor's, as JSON).
	Profile func() json.RawMessage
}

// Validate checks the config.
func (c *RetrainConfig) Validate() error {
	switch {
	case c.Registry == nil:
		return errors.New("retrain: no registry")
	case c.Model == "":
		return errors.New("retrain: no model name")
	case c.NewLearner == nil:
		return errors.New("retrain: no learner constructor")
	case c.Rows == nil:
		return errors.New("retrain: no row source")
	case c.Mode != "" && c.Mode != RetrainModeReset && c.Mode != RetrainModeWarm:
		return fmt.Errorf("retrain: mode %q is not reset or warm", c.Mode)
	case c.MinRows < 1:
		return fmt.Errorf("retrain: min_rows %d < 1", c.MinRows)
	case !(c.Holdout > 0 && c.Holdout < 1):
		return fmt.Errorf("retrain: holdout %g outside (0, 1)", c.Holdout)
	}
	return nil
}

// NewRetrainJob validates cfg and builds the job.
func NewRetrainJob(cfg RetrainConfig) (*RetrainJob, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &RetrainJob{reg: cfg.Registry, model: cfg.Model, newLearner: cfg.NewLearner, mode: cfg.Mode,
		rows: cfg.Rows, signature: cfg.Signature, specHash: cfg.SpecHash, minRows: cfg.MinRows,
		holdout: cfg.Holdout, profile: cfg.Profile}, nil
}

// RetrainJob builds a candidate on the rows of its source — a reset
// learner from the spec or, warm-started, a copy of the serving champion,
// as newLearner gives — registers it with lineage and moves the shadow
// alias to it. The governor loop owns it.
type RetrainJob struct {
	reg        *registry.Registry
	model      string
	newLearner func() (models.Learner, error)
	// mode is "reset" or "warm", for the lineage.
	mode      string
	rows      RowSource
	signature registry.Signature
	specHash  string
	minRows   int
	holdout   float64
	profile   func() json.RawMessage
}

// run trains, registers and shadows one candidate and returns its version.
// It trains on the window's rows added at or after since (zero: all of
// them). The candidate learns the oldest 1-holdout of those rows, is
// measured on the newest holdout share (its accuracy at registration),
// then learns those rows too. Its parent is the champion alias's version
// (none when unset).
func (j *RetrainJob) run(ctx context.Context, t retrainTrigger, since time.Time) (registry.Version, error) {
	rows, y, source, err := j.rows.RowsSince(ctx, since)
	if err != nil {
		return registry.Version{}, fmt.Errorf("retrain: rows: %w", err)
	}
	if minRows := max(j.minRows, 1); rows.N < minRows {
		return registry.Version{}, fmt.Errorf("%w: %d of %d", ErrRetrainNoData, rows.N, minRows)
	}
	l, err := j.newLearner()
	if err != nil {
		return registry.Version{}, fmt.Errorf("retrain: new learner: %w", err)
	}
	split := rows.N - max(1, int(float64(rows.N)*j.holdout))
	if err := learnRange(l, &rows, y, 0, split); err != nil {
		return registry.Version{}, err
	}
	acc, err := accuracyRange(l, &rows, y, split, rows.N)
	if err != nil {
		return registry.Version{}, err
	}
	if err := learnRange(l, &rows, y, split, rows.N); err != nil {
		return registry.Version{}, err
	}
	snap, err := l.MarshalBinary()
	if err != nil {
		return registry.Version{}, fmt.Errorf("retrain: snapshot: %w", err)
	}
	var parent int64
	if set, err := j.reg.Aliases(ctx, j.model); err == nil {
		parent = set.Versions[registry.AliasChampion]
	} else if !errors.Is(err, registry.ErrNotFound) {
		return registry.Version{}, fmt.Errorf("retrain: %w", err)
	}
	mode := j.mode
	if mode == "" {
		mode = "reset"
	}
	var profile json.RawMessage
	if j.profile != nil {
		profile = j.profile()
	}
	v, err := j.reg.Register(ctx, registry.Registration{
		Model: j.model, Signature: j.signature, Snapshot: snap, Who: whoRetrain,
		Why: fmt.Sprintf("%s: %s", t.Kind, t.Reason),
		Lineage: registry.Lineage{
			Parent: parent, SpecHash: j.specHash,
			Source:  source,
			Profile: profile,
			Metrics: map[string]float64{
				"accuracy": acc, "holdoutRows": float64(rows.N - split), "trainRows": float64(rows.N),
			},
		},
	})
	if err != nil {
		return registry.Version{}, fmt.Errorf("retrain: %w", err)
	}
	if _, err := j.reg.MoveAlias(ctx, registry.AliasMove{
		Model: j.model, Alias: registry.AliasShadow, Version: v.Number, Expect: registry.AnyVersion,
		Who: whoRetrain, Why: t.Key,
		Details: map[string]string{"trigger": t.Kind, "parent": strconv.FormatInt(parent, 10), "mode": mode,
			"trainRows": strconv.Itoa(rows.N)},
	}); err != nil {
		return v, fmt.Errorf("retrain: shadow version %d: %w", v.Number, err)
	}
	return v, nil
}

// learnRange teaches l rows [lo, hi) in batches.
func learnRange(l models.Learner, rows *models.Rows, y []float32, lo, hi int) error {
	for s := lo; s < hi; s += retrainBatch {
		e := min(s+retrainBatch, hi)
		sub := sliceRows(rows, s, e)
		if err := l.Learn(&sub, y[s:e]); err != nil && !errors.Is(err, models.ErrInvalidLabel) {
			return fmt.Errorf("retrain: learn: %w", err)
		}
	}
	return nil
}

// accuracyRange is l's accuracy (models.ClassOfOutputs at the default
// threshold) on rows [lo, hi).
func accuracyRange(l models.Learner, rows *models.Rows, y []float32, lo, hi int) (float64, error) {
	if hi <= lo {
		return 0, nil
	}
	sub := sliceRows(rows, lo, hi)
	k := l.Classes()
	dst := make([]float32, sub.N*k)
	if err := l.Predict(dst, &sub); err != nil {
		return 0, fmt.Errorf("retrain: predict: %w", err)
	}
	correct := 0
	for i := range sub.N {
		if float32(models.ClassOfOutputs(dst[i*k:(i+1)*k], models.Threshold)) == y[lo+i] {
			correct++
		}
	}
	return float64(correct) / float64(sub.N), nil
}

// sliceRows is rows [lo, hi) of rows, sharing its memory.
func sliceRows(rows *models.Rows, lo, hi int) models.Rows {
	return models.Rows{N: hi - lo, NumDense: rows.NumDense, NumHashed: rows.NumHashed,
		Dense:  rows.Dense[lo*rows.NumDense : hi*rows.NumDense],
		Hashed: rows.Hashed[lo*rows.NumHashed : hi*rows.NumHashed]}
}

// retrainSource turns received alerts and operators' retrain requests
// into retrain triggers, each once. It is not safe for concurrent use: the
// governor loop owns it.
type retrainSource struct {
	model string
	// alerts returns the alerts received since the previous call
	// (AlertInbox.Drain); nil when the spec has no alerts topic.
	alerts func() []alert.Alert
	// onDrift: error-drift alerts trigger retrains (rollout.retrain.on_drift).
	onDrift bool
	keys    map[string]bool // dedupe keys already retrained for
	// admin gives the retrain requests; nil: none.
	admin  AdminRequests
	cursor string // "" until the requests' tail is known
}

// alertTriggers returns a trigger for each new error-drift alert (subject
// "error", state drift): the drift monitor watches the champion's errors
// only, so these are the champion's (the alerts topic is the spec's own).
// Every new alert is returned in seen (the governor tracks open input
// drift with them).
func (s *retrainSource) alertTriggers() (triggers []retrainTrigger, seen []alert.Alert) {
	if s.alerts == nil {
		return nil, nil
	}
	if s.keys == nil {
		s.keys = map[string]bool{}
	}
	for _, a := range s.alerts() {
		seen = append(seen, a)
		if !s.onDrift || a.Subject != alert.SubjectError || a.State != alert.StateDrift || s.keys[a.DedupeKey] {
			continue
		}
		s.keys[a.DedupeKey] = true
		triggers = append(triggers, retrainTrigger{Kind: "drift", Key: a.DedupeKey,
			Reason: fmt.Sprintf("%s drift on %s of %s (statistic %.4g, threshold %.4g)", a.Detector, a.Subject, a.ModelVersion, a.Statistic, a.Threshold)})
	}
	return triggers, seen
}

// requestTriggers returns the model's retrain requests made since the
// previous call; the first call only notes the requests' tail, so requests
// made before the loop started are not replayed.
func (s *retrainSource) requestTriggers(ctx context.Context) ([]retrainTrigger, error) {
	if s.admin == nil {
		return nil, nil
	}
	reqs, cursor, err := s.admin.RetrainRequests(ctx, s.cursor, 100)
	if err != nil {
		return nil, fmt.Errorf("retrain requests: %w", err)
	}
	s.cursor = cursor
	var out []retrainTrigger
	for _, r := range reqs {
		if r.Model != s.model {
			continue
		}
		out = append(out, retrainTrigger{Kind: "request", Key: r.ID, Reason: fmt.Sprintf("%s: %s", r.Who, r.Why)})
	}
	return out, nil
}
