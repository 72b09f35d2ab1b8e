package governance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/registry"
)

// ErrRewound is what LearnSession.Commit returns when the publish was
// aborted and the session went back to its last committed positions: the
// writer then serves its last committed states again and learns on.
var ErrRewound = errors.New("governance: publish aborted; the label feed went back to the last committed positions")

// LearnSession is the writer's side of the labels and the learner-state
// topic, opened by the lease holder; the app implements it over the label
// join and connectors/kafka's label feed. It is used by one goroutine.
type LearnSession interface {
	// Start starts consuming every partition of the labels topic at from:
	// a partition without a position starts at the labels group's
	// committed offset, else at the log start; the early-label stream
	// after from.Early.
	Start(ctx context.Context, from Positions) error
	// Learn joins and teaches at most max label records (and early
	// labels) that arrived, waiting at most wait for the first; it returns how many it
	// consumed (learned, parked or invalid). Once it has records, it
	// handles them all even when ctx ends meanwhile (only the wait is
	// cut short): an error means it may have taught part of them, and the
	// writer then never publishes what it learned since its last publish.
	Learn(ctx context.Context, wait time.Duration, max int) (int, error)
	// Positions is where what Learn consumed so far ends.
	Positions() Positions
	// Commit publishes the records (key, value) and commits Positions as
	// the labels group's offsets — in exactly-once mode in one transaction
	// with the records — then releases the joined rows they cover. It
	// returns ErrRewound when the transaction was aborted and the session
	// went back to the positions of its last commit.
	Commit(ctx context.Context, recs []KeyValue) error
	// Close ends the session (an open transaction is aborted).
	Close()
}

// KeyValue is one record to publish.
type KeyValue struct{ Key, Value []byte }

// OpenLearnSession opens a writer's session under lease epoch epoch. In
// exactly-once mode opening fences the previous writer: its open
// transaction is aborted and it can commit no more. It does not consume
// until Start.
type OpenLearnSession func(ctx context.Context, epoch int64) (LearnSession, error)

// StateWriterConfig configures a StateWriter; every field but Progress,
// the defaults noted and Log/Now is required.
type StateWriterConfig struct {
	Registry *registry.Registry
	Model    string
	// Holder names this instance on the learner lease.
	Holder string
	// LeaseTTL is the learner lease's time to live (default 10s); it is
	// renewed every third of it.
	LeaseTTL time.Duration
	// PublishLabels (K, default 10,000) and PublishInterval (T, default
	// 1s): a publish happens once K label records were consumed since the
	// last one, or T after it when any was.
	PublishLabels   int
	PublishInterval time.Duration
	Served          Served
	Follower        *StateFollower
	Open            OpenLearnSession
	// Progress, when set, receives the live learned counts after each
	// learn step (at most every 50ms), for the followers' staleness gauge.
	Progress   ProgressStore
	Registerer prometheus.Registerer
	Log        *slog.Logger
	Now        func() time.Time
}

// Defaults of StateWriterConfig.
const (
	DefaultLeaseTTL        = 10 * time.Second
	DefaultPublishLabels   = 10_000
	DefaultPublishInterval = time.Second
)

// Validate checks the config; its errors name the field at fault.
func (c *StateWriterConfig) Validate() error {
	switch {
	case c.Registry == nil:
		return errors.New("governance: state writer: no registry")
	case c.Model == "":
		return errors.New("governance: state writer: no model")
	case c.Holder == "":
		return errors.New("governance: state writer: no lease holder name")
	case c.Served == nil || c.Follower == nil || c.Open == nil:
		return errors.New("governance: state writer: needs Served, Follower and Open")
	case c.Registerer == nil:
		return errors.New("governance: state writer: no metrics registerer")
	case c.LeaseTTL < 0 || (c.LeaseTTL > 0 && c.LeaseTTL < 30*time.Millisecond):
		return fmt.Errorf("governance: state writer: lease ttl %s below 30ms", c.LeaseTTL)
	case c.PublishLabels < 0 || c.PublishInterval < 0:
		return errors.New("governance: state writer: negative publish labels or interval")
	}
	return nil
}

// learnerLease names a model's learner lease in the registry.
func learnerLease(model string) string { return "learner." + model }

// learnWait bounds one learn step's wait for labels, so that publishes
// and lease renewals are on time.
const learnWait = 50 * time.Millisecond

// StateWriter owns the learning of one model's served versions on one
// instance at a time: every instance runs one, and the holder of the
// model's learner lease ("learner.<model>", registry.TryLeaseEpoch) is the
// writer. The writer
//
//  1. opens its learn session (in exactly-once mode this fences the last
//     writer's transactions);
//  2. reads the learner-state log to its end (StateFollower.CatchUp) and
//     serves, for every served version, its newest logged state — or its
//     base (registry snapshot, the spec's learner) when the log has none —
//     so that it learns on from exactly what was published, never from a
//     state ahead of the log;
//  3. resumes the labels at the positions of the newest publish (its
//     records all carry the same positions; versions logged by an older
//     publish were not served since, so they learned nothing after it);
//  4. learns, and publishes every served version's state with the
//     positions it covers once K label records were consumed or T passed,
//     whichever comes first, stamped with its holder name, lease epoch and
//     a sequence number; the session commits the label offsets with them
//     (one transaction in exactly-once mode) and then releases the joined
//     rows they cover;
//  5. renews the lease every third of its TTL, and stops writing — steps
//     down, serving the log's newest states again — when a renewal fails
//     for longer than a third of the TTL, the lease moved, or a publish
//     fails; an aborted publish (ErrRewound) only takes it back to its last
//     committed states.
//
// Ordering: a record is published before the offsets it covers are
// committed (at-least-once mode) or in the same transaction (exactly-once),
// and a joined row is deleted only after a publish covering it committed,
// so a restored writer re-joins exactly the labels after the restored
// positions and finds their rows (stages: labeljoin_log.go). A writer
// whose lease ran out stops publishing with a third of the TTL to spare,
// more than the session's delivery timeout, so a late record of an old
// writer lands before a new writer reads the log; and followers order
// records by (epoch, sequence), not by offset.
//
// On a graceful stop it publishes what it learned since its last publish
// and releases the lease, so another instance takes over at once. Run is
// called once.
type StateWriter struct {
	cfg StateWriterConfig
	log *slog.Logger
	now func() time.Time

	writer             *prometheus.GaugeVec
	published, rewinds *prometheus.CounterVec
	recordBytes        *prometheus.GaugeVec
	publishSeconds     prometheus.Histogram
	lastProgress       time.Time
	leaseName          string
}

// NewStateWriter validates cfg and builds the writer; it does no I/O.
func NewStateWriter(cfg StateWriterConfig) (*StateWriter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.PublishLabels == 0 {
		cfg.PublishLabels = DefaultPublishLabels
	}
	if cfg.PublishInterval == 0 {
		cfg.PublishInterval = DefaultPublishInterval
	}
	w := &StateWriter{cfg: cfg, log: cfg.Log, now: cfg.Now, leaseName: learnerLease(cfg.Model)}
	if w.log == nil {
		w.log = slog.Default()
	}
	if w.now == nil {
		w.now = time.Now
	}
	w.writer = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "driftline_model_state_writer",
		Help: "1 while this instance holds the model's learner lease and learns, else 0."}, []string{"model"})
	w.published = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "driftline_model_state_published_total",
		Help: "Learner-state publishes committed by this instance (one record per served version each)."}, []string{"model"})
	w.rewinds = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "driftline_model_state_rewinds_total",
		Help: "Publishes aborted, after which the writer went back to its last committed state."}, []string{"model"})
	w.recordBytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "driftline_model_state_record_bytes",
		Help: "Size of the last learner-state record published, per model version."}, []string{"model", "version"})
	w.publishSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "driftline_model_state_publish_duration_seconds",
		Help: "Time to snapshot, publish and commit one learner-state publish.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)})
	for _, c := range []prometheus.Collector{w.writer, w.published, w.rewinds, w.recordBytes, w.publishSeconds} {
		if err := cfg.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("governance: register learner-state metrics: %w", err)
		}
	}
	w.writer.WithLabelValues(cfg.Model).Set(0)
	return w, nil
}

// Run competes for the lease and writes while it holds it, until ctx
// ends; it returns nil then. Errors while writing are logged, and the
// instance steps down and competes again.
func (w *StateWriter) Run(ctx context.Context) error {
	renew := w.cfg.LeaseTTL / 3
	for ctx.Err() == nil {
		asked := w.now()
		epoch, err := w.cfg.Registry.TryLeaseEpoch(ctx, w.leaseName, w.cfg.Holder, w.cfg.LeaseTTL)
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("learner state: lease", "model", w.cfg.Model, "err", err)
			}
			sleep(ctx, renew)
			continue
		}
		if epoch == 0 {
			sleep(ctx, renew)
			continue
		}
		w.log.Info("learner state: lease taken; this instance learns and publishes", "model", w.cfg.Model, "holder", w.cfg.Holder, "epoch", epoch)
		err = w.lead(ctx, epoch, asked)
		if ctx.Err() != nil {
			relCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = w.cfg.Registry.ReleaseLease(relCtx, w.leaseName, w.cfg.Holder)
			cancel()
			return nil
		}
		w.log.Warn("learner state: stepped down", "model", w.cfg.Model, "epoch", epoch, "err", err)
		// Released, the lease is taken next with a new epoch, by this
		// instance or another.
		relCtx, cancel := context.WithTimeout(ctx, renew)
		_ = w.cfg.Registry.ReleaseLease(relCtx, w.leaseName, w.cfg.Holder)
		cancel()
		sleep(ctx, renew)
	}
	return nil
}

// leadState is one holding of the lease.
type leadState struct {
	epoch, seq int64
	// validUntil is when the lease runs out unless renewed.
	validUntil time.Time
	// committed is the records of the last committed publish (or the
	// restored ones), by version: what a rewind serves again.
	committed map[string]*StateRecord
}

// lead writes under lease epoch (taken by the call sent at asked) until
// ctx ends or it must step down.
func (w *StateWriter) lead(ctx context.Context, epoch int64, asked time.Time) (err error) {
	ls := &leadState{epoch: epoch, validUntil: asked.Add(w.cfg.LeaseTTL)}
	w.cfg.Follower.setLeading(true)
	w.writer.WithLabelValues(w.cfg.Model).Set(1)
	defer func() {
		w.writer.WithLabelValues(w.cfg.Model).Set(0)
		if ctx.Err() == nil {
			// Stepping down: serve the log's newest states, not what this
			// instance learned past them.
			if rerr := w.restore(context.WithoutCancel(ctx), w.cfg.Follower.records()); rerr != nil {
				w.log.Warn("learner state: restore after stepping down", "model", w.cfg.Model, "err", rerr)
			}
		}
		w.cfg.Follower.setLeading(false)
	}()
	// Steps 1–3 must end while the lease is surely held.
	setupCtx, cancel := context.WithDeadline(ctx, ls.validUntil.Add(-w.cfg.LeaseTTL/3))
	defer cancel()
	sess, err := w.cfg.Open(setupCtx, epoch)
	if err != nil {
		return fmt.Errorf("open the learn session: %w", err)
	}
	defer sess.Close()
	if err := w.cfg.Follower.CatchUp(setupCtx); err != nil {
		return fmt.Errorf("read the state log to its end: %w", err)
	}
	recs := w.cfg.Follower.records()
	if err := w.restore(setupCtx, recs); err != nil {
		return err
	}
	from := Positions{}
	if last := lastPublish(recs); last != nil {
		from = last.Positions.Clone()
		if last.Epoch == epoch {
			// This instance kept the lease across a step-down whose
			// release failed: its sequence goes on.
			ls.seq = last.Seq
		}
	}
	if err := sess.Start(setupCtx, from); err != nil {
		return fmt.Errorf("start the label feed: %w", err)
	}
	ls.committed = recs
	w.log.Info("learner state: restored; learning", "model", w.cfg.Model, "epoch", epoch, "versions", len(recs), "from", from.Labels, "early", from.Early)

	renewEvery := w.cfg.LeaseTTL / 3
	nextRenew := w.now().Add(renewEvery)
	lastPublish := w.now()
	consumed := 0
	for {
		if ctx.Err() != nil {
			if consumed > 0 && w.now().Before(ls.validUntil.Add(-renewEvery)) {
				pubCtx, cancel := context.WithDeadline(context.WithoutCancel(ctx), ls.validUntil.Add(-renewEvery))
				err := w.publish(pubCtx, sess, ls)
				cancel()
				if err != nil {
					w.log.Warn("learner state: final publish", "model", w.cfg.Model, "err", err)
				}
			}
			return ctx.Err()
		}
		if now := w.now(); !now.Before(nextRenew) {
			if err := w.renew(ctx, ls); err != nil {
				if w.now().After(ls.validUntil.Add(-renewEvery)) {
					return err
				}
				w.log.Warn("learner state: lease renewal failed; retrying", "model", w.cfg.Model, "err", err)
				nextRenew = w.now().Add(renewEvery / 4)
			} else {
				nextRenew = now.Add(renewEvery)
			}
		}
		n, err := sess.Learn(ctx, learnWait, w.cfg.PublishLabels-consumed)
		if err != nil {
			// What Learn taught before it failed is not covered by its
			// positions: never publish it.
			return fmt.Errorf("learn: %w", err)
		}
		consumed += n
		if n > 0 {
			w.reportProgress(ctx)
		}
		due := consumed >= w.cfg.PublishLabels || (consumed > 0 && w.now().Sub(lastPublish) >= w.cfg.PublishInterval)
		if !due || ctx.Err() != nil {
			continue
		}
		if !w.now().Before(ls.validUntil.Add(-renewEvery)) {
			return errors.New("the lease may run out before a publish ends")
		}
		// A publish is bounded by the lease, not by ctx: one that a
		// shutdown interrupted would abort, and what was learned since the
		// last publish would be left to the next writer to learn again.
		pubCtx, cancel := context.WithDeadline(context.WithoutCancel(ctx), ls.validUntil.Add(-renewEvery/2))
		err = w.publish(pubCtx, sess, ls)
		cancel()
		switch {
		case errors.Is(err, ErrRewound):
			w.rewinds.WithLabelValues(w.cfg.Model).Inc()
			w.log.Warn("learner state: publish aborted; back to the last committed state", "model", w.cfg.Model, "epoch", epoch)
			if err := w.restore(ctx, ls.committed); err != nil {
				return err
			}
		case err != nil:
			return fmt.Errorf("publish: %w", err)
		}
		consumed, lastPublish = 0, w.now()
	}
}

// renew renews the lease; it fails when the lease moved.
func (w *StateWriter) renew(ctx context.Context, ls *leadState) error {
	asked := w.now()
	callCtx, cancel := context.WithDeadline(ctx, ls.validUntil)
	defer cancel()
	epoch, err := w.cfg.Registry.TryLeaseEpoch(callCtx, w.leaseName, w.cfg.Holder, w.cfg.LeaseTTL)
	if err != nil {
		return err
	}
	if epoch != ls.epoch {
		return fmt.Errorf("the lease moved (epoch %d, held %d)", epoch, ls.epoch)
	}
	ls.validUntil = asked.Add(w.cfg.LeaseTTL)
	return nil
}

// publish snapshots every served version and commits them with the
// session's positions.
func (w *StateWriter) publish(ctx context.Context, sess LearnSession, ls *leadState) error {
	start := w.now()
	seq := ls.seq + 1
	pos := sess.Positions()
	versions := w.cfg.Served.Versions()
	recs := make(map[string]*StateRecord, len(versions))
	kvs := make([]KeyValue, 0, len(versions))
	for _, v := range slices.Sorted(maps.Keys(versions)) {
		l, m, ok := w.cfg.Served.Snapshot(v)
		if !ok {
			continue
		}
		state, err := l.MarshalBinary()
		if err != nil {
			return fmt.Errorf("snapshot version %s: %w", v, err)
		}
		rec := &StateRecord{Model: w.cfg.Model, Version: v, Writer: w.cfg.Holder, Epoch: ls.epoch, Seq: seq,
			Learned: m.Learned, PublishedAt: start, Positions: pos, State: state}
		val, err := rec.Encode()
		if err != nil {
			return err
		}
		recs[v] = rec
		kvs = append(kvs, KeyValue{Key: []byte(StateKey(w.cfg.Model, v)), Value: val})
		w.recordBytes.WithLabelValues(w.cfg.Model, v).Set(float64(len(val)))
	}
	if err := sess.Commit(ctx, kvs); err != nil {
		return err
	}
	ls.seq = seq
	for v := range recs {
		w.cfg.Served.Stamp(v, ls.epoch, seq)
	}
	// Versions served before and not now keep their older records.
	committed := maps.Clone(ls.committed)
	if committed == nil {
		committed = map[string]*StateRecord{}
	}
	maps.Copy(committed, recs)
	ls.committed = committed
	w.published.WithLabelValues(w.cfg.Model).Inc()
	w.publishSeconds.Observe(w.now().Sub(start).Seconds())
	w.log.Debug("learner state: published", "model", w.cfg.Model, "epoch", ls.epoch, "seq", seq, "versions", len(recs), "labels", pos.Labels, "early", pos.Early)
	return nil
}

// restore serves, for every served version, its record in recs, or its
// base when recs has none.
func (w *StateWriter) restore(ctx context.Context, recs map[string]*StateRecord) error {
	for v := range w.cfg.Served.Versions() {
		var l models.Learner
		var m Mark
		if rec := recs[v]; rec != nil {
			var err error
			if l, err = models.UnmarshalLearner(rec.State); err != nil {
				return fmt.Errorf("restore %s: %w", StateKey(w.cfg.Model, v), err)
			}
			m = rec.Mark()
		} else {
			var err error
			if l, err = w.cfg.Served.Base(ctx, v); err != nil {
				return fmt.Errorf("restore %s from its base: %w", StateKey(w.cfg.Model, v), err)
			}
		}
		w.cfg.Served.Swap(v, l, m)
	}
	return nil
}

// reportProgress shares the live learned counts, at most every 50ms.
func (w *StateWriter) reportProgress(ctx context.Context) {
	if w.cfg.Progress == nil || w.now().Sub(w.lastProgress) < 50*time.Millisecond {
		return
	}
	w.lastProgress = w.now()
	learned := map[string]int64{}
	for v, m := range w.cfg.Served.Versions() {
		learned[v] = m.Learned
	}
	if err := w.cfg.Progress.SetProgress(ctx, w.cfg.Model, learned); err != nil && ctx.Err() == nil {
		w.log.Debug("learner state: share progress", "err", err)
	}
}
