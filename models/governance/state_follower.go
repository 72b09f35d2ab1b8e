package governance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftline/driftline/models"
)

// StateLogRecord is a record of the learner-state topic as a follower reads
// it. A control record (a transaction marker) has no key or value; it only
// moves the partition's position on.
type StateLogRecord struct {
	Partition  int32
	Offset     int64
	Key, Value []byte
	Control    bool
}

// StateTail reads the learner-state topic from its start and then follows
// it; connectors/kafka implements it. It is used by one goroutine.
type StateTail interface {
	// Poll returns the records that arrived next, in offset order per
	// partition; it waits until some arrive or ctx ends (then it returns
	// no records and no error, or ctx's error).
	Poll(ctx context.Context) ([]StateLogRecord, error)
	// Ends returns, for every partition, the offset a reader has read the
	// topic to once it has read every record before it: the end offsets
	// now (the last stable offsets when it reads committed records only).
	Ends(ctx context.Context) (map[int32]int64, error)
}

// Served is the model versions an instance serves now (the rollout arms:
// champion, canary, shadow; or the champion alone), as the learner-state
// loops see them. The app implements it over its arms; it is safe for
// concurrent use.
type Served interface {
	// Versions returns the versions served now, each once, with their marks.
	Versions() map[string]Mark
	// Snapshot returns a copy of version's learner and its mark, taken
	// together; ok is false when version is not served.
	Snapshot(version string) (l models.Learner, m Mark, ok bool)
	// Swap serves l, marked m, as version from the next batch on; it does
	// nothing when version is not served.
	Swap(version string, l models.Learner, m Mark)
	// Stamp sets the epoch and sequence of version's mark (after a publish
	// that holds its state committed), keeping Learned.
	Stamp(version string, epoch, seq int64)
	// Base returns the learner version starts from when the log holds no
	// state of it: its registry snapshot, or the spec's untrained learner.
	Base(ctx context.Context, version string) (models.Learner, error)
}

// ProgressStore shares the writer's live learned counts with the followers,
// for their staleness gauge (connectors/redis implements it).
type ProgressStore interface {
	// SetProgress records the labels each version of model has learned.
	SetProgress(ctx context.Context, model string, learned map[string]int64) error
	// Progress returns what SetProgress recorded last (empty when nothing).
	Progress(ctx context.Context, model string) (map[string]int64, error)
}

// StateFollowerConfig configures a StateFollower; Model, Tail, Served and
// Registerer are required.
type StateFollowerConfig struct {
	Model  string
	Tail   StateTail
	Served Served
	// Progress, when set, gives the writer's live counts for the staleness
	// gauge (without it, staleness counts published labels only).
	Progress ProgressStore
	// Registerer receives the driftline_model_state_* gauges.
	Registerer prometheus.Registerer
	// Log defaults to slog.Default(); Now to time.Now.
	Log *slog.Logger
	Now func() time.Time
}

// Validate checks the config; its errors name the field at fault.
func (c *StateFollowerConfig) Validate() error {
	switch {
	case c.Model == "":
		return errors.New("governance: state follower: no model")
	case c.Tail == nil:
		return errors.New("governance: state follower: no state tail")
	case c.Served == nil:
		return errors.New("governance: state follower: no served versions")
	case c.Registerer == nil:
		return errors.New("governance: state follower: no metrics registerer")
	}
	return nil
}

// followerTick bounds how long the follower waits for records before it
// refreshes the gauges and re-applies states.
const followerTick = 250 * time.Millisecond

// StateFollower keeps an instance's served versions on the newest state
// of the learner-state log: it reads the topic from its start (compacted,
// so about one record per version) and follows it, keeps the newest record
// of each of its model's versions (by lease epoch, then publish sequence:
// a record from an earlier writer that lands late never replaces a later
// writer's), and swaps each served version's learner for a newer record's
// between batches (Served.Swap). While this instance is the model's writer
// (StateWriter), its served learners are the live ones and the follower
// only keeps the records.
//
// Ready reports whether it has read the topic up to the end offsets it saw
// when Run started, and applied what it read: an instance restores every
// served version from the log before it is ready. A version that the
// rollout watcher starts to serve later takes its state from Latest.
//
// Gauges, per served version: driftline_model_state_learned_labels (the
// labels the served state has learned), driftline_model_state_staleness_labels
// (labels the writer has learned that the served state has not) and
// driftline_model_state_age_seconds (since the served state was
// published; 0 on the writer). Run is called once; the other methods are
// safe for concurrent use.
type StateFollower struct {
	cfg StateFollowerConfig
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	latest  map[string]*StateRecord // newest record per version
	read    map[int32]int64         // next offset to read, per partition
	applied map[string]time.Time    // published time of each served state from the log
	leading bool
	ready   bool
	changed chan struct{} // closed and replaced whenever read advances

	progress     map[string]int64
	progressRead time.Time

	learnedG, stalenessG, ageG *prometheus.GaugeVec
	swaps, invalid             prometheus.Counter
	gauged                     map[string]bool
}

// NewStateFollower validates cfg and builds the follower; it does no I/O.
func NewStateFollower(cfg StateFollowerConfig) (*StateFollower, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f := &StateFollower{cfg: cfg, log: cfg.Log, now: cfg.Now, latest: map[string]*StateRecord{}, read: map[int32]int64{},
		applied: map[string]time.Time{}, changed: make(chan struct{}), gauged: map[string]bool{}}
	if f.log == nil {
		f.log = slog.Default()
	}
	if f.now == nil {
		f.now = time.Now
	}
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"model", "version"})
	}
	f.learnedG = gauge("driftline_model_state_learned_labels", "Labels the learner state this instance serves has learned, per served model version.")
	f.stalenessG = gauge("driftline_model_state_staleness_labels", "Labels the model's writer has learned that the state this instance serves has not (0 on the writer).")
	f.ageG = gauge("driftline_model_state_age_seconds", "Seconds since the learner state this instance serves was published (0 on the writer).")
	f.swaps = prometheus.NewCounter(prometheus.CounterOpts{Name: "driftline_model_state_swaps_total",
		Help: "Served learner states replaced by a newer state from the learner-state topic."})
	f.invalid = prometheus.NewCounter(prometheus.CounterOpts{Name: "driftline_model_state_invalid_total",
		Help: "Learner-state records that failed their checksum or did not decode."})
	for _, c := range []prometheus.Collector{f.learnedG, f.stalenessG, f.ageG, f.swaps, f.invalid} {
		if err := cfg.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("governance: register learner-state metrics: %w", err)
		}
	}
	return f, nil
}

// Run reads and follows the log until ctx ends; it returns nil then. A
// failed read is logged and retried: the served states stay as they are.
func (f *StateFollower) Run(ctx context.Context) error {
	var startEnds map[int32]int64
	for ctx.Err() == nil {
		if startEnds == nil {
			ends, err := f.cfg.Tail.Ends(ctx)
			if err != nil {
				f.log.Warn("learner state: list the end of the state topic", "model", f.cfg.Model, "err", err)
				sleep(ctx, followerTick)
				continue
			}
			startEnds = ends
		}
		pollCtx, cancel := context.WithTimeout(ctx, followerTick)
		recs, err := f.cfg.Tail.Poll(pollCtx)
		cancel()
		if err != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
			f.log.Warn("learner state: read the state topic", "model", f.cfg.Model, "err", err)
			sleep(ctx, followerTick)
		}
		f.take(recs)
		f.reconcile(ctx)
		f.mu.Lock()
		if !f.ready && reached(f.read, startEnds) {
			f.ready = true
			f.log.Info("learner state: restored from the log", "model", f.cfg.Model, "versions", len(f.latest))
		}
		f.mu.Unlock()
	}
	return nil
}

// take keeps the newest record of each version and moves the positions on.
func (f *StateFollower) take(recs []StateLogRecord) {
	if len(recs) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range recs {
		r := &recs[i]
		f.read[r.Partition] = max(f.read[r.Partition], r.Offset+1)
		if r.Control || r.Value == nil || modelOfKey(string(r.Key)) != f.cfg.Model {
			continue
		}
		rec, err := DecodeStateRecord(r.Value)
		if err != nil || StateKey(rec.Model, rec.Version) != string(r.Key) {
			f.invalid.Inc()
			f.log.Warn("learner state: record skipped", "key", string(r.Key), "partition", r.Partition, "offset", r.Offset, "err", err)
			continue
		}
		if cur := f.latest[rec.Version]; cur == nil || rec.Mark().Newer(cur.Mark()) {
			f.latest[rec.Version] = rec
		}
	}
	close(f.changed)
	f.changed = make(chan struct{})
}

// reached reports whether read has passed every end of ends.
func reached(read, ends map[int32]int64) bool {
	for p, e := range ends {
		if e > 0 && read[p] < e {
			return false
		}
	}
	return true
}

// reconcile swaps in newer states (unless leading) and sets the gauges.
func (f *StateFollower) reconcile(ctx context.Context) {
	served := f.cfg.Served.Versions()
	f.mu.Lock()
	leading := f.leading
	var todo []*StateRecord
	if !leading {
		for v, m := range served {
			if rec := f.latest[v]; rec != nil && rec.Mark().Newer(m) {
				todo = append(todo, rec)
			}
		}
	}
	f.mu.Unlock()
	for _, rec := range todo {
		if err := f.apply(rec); err != nil {
			f.invalid.Inc()
			f.log.Warn("learner state: state not served", "model", f.cfg.Model, "version", rec.Version, "err", err)
			continue
		}
		served[rec.Version] = rec.Mark()
		f.swaps.Inc()
	}
	f.gauge(ctx, served, leading)
}

// apply serves rec's state.
func (f *StateFollower) apply(rec *StateRecord) error {
	l, err := models.UnmarshalLearner(rec.State)
	if err != nil {
		return err
	}
	f.cfg.Served.Swap(rec.Version, l, rec.Mark())
	f.mu.Lock()
	f.applied[rec.Version] = rec.PublishedAt
	f.mu.Unlock()
	return nil
}

// gauge sets the per-version gauges of the served versions and drops those
// of versions no longer served.
func (f *StateFollower) gauge(ctx context.Context, served map[string]Mark, leading bool) {
	now := f.now()
	progress := f.readProgress(ctx, now)
	f.mu.Lock()
	defer f.mu.Unlock()
	model := f.cfg.Model
	for v, m := range served {
		f.learnedG.WithLabelValues(model, v).Set(float64(m.Learned))
		stale, age := 0.0, 0.0
		if !leading {
			ahead := progress[v]
			if rec := f.latest[v]; rec != nil {
				ahead = max(ahead, rec.Learned)
			}
			stale = float64(max(0, ahead-m.Learned))
			if at, ok := f.applied[v]; ok {
				age = now.Sub(at).Seconds()
			}
		}
		f.stalenessG.WithLabelValues(model, v).Set(stale)
		f.ageG.WithLabelValues(model, v).Set(age)
		f.gauged[v] = true
	}
	for v := range f.gauged {
		if _, ok := served[v]; !ok {
			f.learnedG.DeleteLabelValues(model, v)
			f.stalenessG.DeleteLabelValues(model, v)
			f.ageG.DeleteLabelValues(model, v)
			delete(f.gauged, v)
			delete(f.applied, v)
		}
	}
}

// progressEvery bounds how often the follower reads the writer's counts
// (the writer shares them at most every 50ms too).
const progressEvery = 50 * time.Millisecond

// readProgress returns the writer's live counts, read at most every
// progressEvery.
func (f *StateFollower) readProgress(ctx context.Context, now time.Time) map[string]int64 {
	if f.cfg.Progress == nil {
		return nil
	}
	if now.Sub(f.progressRead) < progressEvery {
		return f.progress
	}
	p, err := f.cfg.Progress.Progress(ctx, f.cfg.Model)
	if err != nil {
		f.log.Debug("learner state: read the writer's progress", "err", err)
		return f.progress
	}
	f.progress, f.progressRead = p, now
	return p
}

// Ready reports whether the follower has read the log to the end it saw at
// start and served what it read.
func (f *StateFollower) Ready() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ready
}

// WaitReady waits until Ready or ctx ends.
func (f *StateFollower) WaitReady(ctx context.Context) error {
	for {
		f.mu.Lock()
		ready, changed := f.ready, f.changed
		f.mu.Unlock()
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-time.After(followerTick):
		}
	}
}

// CatchUp waits until the follower has read every record written to the
// log before the call (the writer's restore at takeover), or ctx ends.
func (f *StateFollower) CatchUp(ctx context.Context) error {
	ends, err := f.cfg.Tail.Ends(ctx)
	if err != nil {
		return fmt.Errorf("list the end of the state topic: %w", err)
	}
	for {
		f.mu.Lock()
		done, changed := reached(f.read, ends), f.changed
		f.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// Latest returns the newest logged state of version as a fresh learner,
// with its mark; ok is false when the log holds none.
func (f *StateFollower) Latest(version string) (l models.Learner, m Mark, ok bool, err error) {
	f.mu.Lock()
	rec := f.latest[version]
	f.mu.Unlock()
	if rec == nil {
		return nil, Mark{}, false, nil
	}
	if l, err = models.UnmarshalLearner(rec.State); err != nil {
		return nil, Mark{}, false, fmt.Errorf("learner state of %s: %w", StateKey(rec.Model, rec.Version), err)
	}
	f.mu.Lock()
	f.applied[version] = rec.PublishedAt
	f.mu.Unlock()
	return l, rec.Mark(), true, nil
}

// records returns the newest record of every version.
func (f *StateFollower) records() map[string]*StateRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.latest)
}

// lastPublish returns the record of the newest publish (any of its
// versions), or nil when the log holds none of the model.
func lastPublish(recs map[string]*StateRecord) *StateRecord {
	var last *StateRecord
	for _, v := range slices.Sorted(maps.Keys(recs)) {
		if r := recs[v]; last == nil || r.Mark().Newer(last.Mark()) {
			last = r
		}
	}
	return last
}

// setLeading tells the follower whether this instance is the writer.
func (f *StateFollower) setLeading(leading bool) {
	f.mu.Lock()
	f.leading = leading
	f.mu.Unlock()
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
