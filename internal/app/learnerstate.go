package app

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/connectors/redis"
	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/governance"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
)

// learnerState is the App's learner-state log (topics.model_state): every
// instance follows the log and serves the newest state of each served
// version (follower); the holder of the model's learner lease consumes
// the labels topic, learns, and publishes (writer). Without a model_state
// topic there is none, and each instance learns inline from its share of
// the labels (labelPlane).
type learnerState struct {
	a        *App
	tail     *kafka.StateTail
	follower *governance.StateFollower
	writer   *governance.StateWriter
	served   *servedVersions
}

// newLearnerState wires the follower and the writer. newBase builds the
// spec's untrained learner (the base of a champion without a registry).
func (a *App) newLearnerState(newBase func() (models.Learner, error)) (*learnerState, error) {
	spec := a.spec
	ls := &learnerState{a: a, served: &servedVersions{a: a, newBase: newBase}}
	var err error
	ls.tail, err = kafka.NewStateTail(kafka.StateTailConfig{Client: a.kcc, Topic: spec.Topics.ModelState,
		Committed: spec.Kafka.ExactlyOnce, MaxRecordBytes: spec.LearnerState.MaxRecordBytes})
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, func() error { ls.tail.Close(); return nil })
	progress := redis.LearnerProgress{Client: a.rdb, Prefix: spec.Redis.Prefix() + "learner-progress:"}
	ls.follower, err = governance.NewStateFollower(governance.StateFollowerConfig{Model: spec.Model.Name, Tail: stateTail{ls.tail},
		Served: ls.served, Progress: progress, Registerer: a.reg, Log: a.log})
	if err != nil {
		return nil, err
	}
	st := &spec.LearnerState
	ls.writer, err = governance.NewStateWriter(governance.StateWriterConfig{Registry: a.stateRegistry(), Model: spec.Model.Name,
		Holder: a.holder, LeaseTTL: st.LeaseTTL.D(), PublishLabels: st.PublishLabels, PublishInterval: st.PublishInterval.D(),
		Served: ls.served, Follower: ls.follower, Open: ls.open, Progress: progress, Registerer: a.reg, Log: a.log})
	if err != nil {
		return nil, err
	}
	return ls, nil
}

// stateRegistry is the registry that holds the learner lease: the App's
// model registry, or one over the App's Redis when the spec has none (it
// holds leases only).
func (a *App) stateRegistry() *registry.Registry {
	if a.models != nil {
		return a.models
	}
	reg, _ := registry.New(a.rdb, registry.Config{}) // the default config is valid
	return reg
}

// restore creates the state topic when missing, starts following it, and
// waits until every served version serves its newest logged state: an
// instance is ready only after that. The follower runs until ctx ends;
// done is closed when it returned.
func (ls *learnerState) restore(ctx context.Context) (done <-chan struct{}, err error) {
	spec := ls.a.spec
	adm, err := kafka.NewAdmin(ls.a.kcc)
	if err != nil {
		return nil, err
	}
	for {
		err := adm.EnsureStateTopic(ctx, spec.Topics.ModelState, spec.LearnerState.MaxRecordBytes)
		if err == nil {
			break
		}
		ls.a.log.Warn("learner state: create the state topic; retrying (not ready)", "topic", spec.Topics.ModelState, "err", err)
		select {
		case <-ctx.Done():
			adm.Close()
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	adm.Close()
	ch := make(chan struct{})
	go func() { defer close(ch); _ = ls.follower.Run(ctx) }()
	if err := ls.follower.WaitReady(ctx); err != nil {
		<-ch
		return nil, err
	}
	return ch, nil
}

// latest is the newest logged state of version, for the rollout watcher.
func (ls *learnerState) latest(version string) (models.Learner, stages.StateMark, bool, error) {
	l, m, ok, err := ls.follower.Latest(version)
	return l, stages.StateMark(m), ok, err
}

// open opens the writer's learn session (governance.OpenLearnSession).
func (ls *learnerState) open(ctx context.Context, _ int64) (governance.LearnSession, error) {
	spec := ls.a.spec
	cc := ls.a.kcc
	cc.ClientID = spec.Kafka.ClientID + "-learner"
	ttl := spec.LearnerState.LeaseTTL.D()
	cfg := kafka.LabelFeedConfig{Client: cc, Topic: spec.Topics.Labels, Group: spec.Kafka.Group + "-labels",
		StateTopic: spec.Topics.ModelState, SessionTimeout: spec.Kafka.SessionTimeout.D(), MaxPoll: spec.Batch.Size,
		MaxRecordBytes: spec.LearnerState.MaxRecordBytes, DeliveryTimeout: ttl / 3, Logger: ls.a.log}
	if spec.Kafka.ExactlyOnce {
		// One id for every writer of the model: a new writer fences the last.
		cfg.TransactionalID = spec.Kafka.ClientID + "-" + spec.Kafka.Group + "-learner-" + spec.Model.Name
	}
	feed, err := kafka.NewLabelFeed(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &learnSession{a: ls.a, feed: feed, open: ls.a.join.Opener(ls.a.labelDLQ(feed, ls.a.kc.MaxRecordBytes)),
		handlers: map[int32]pipeline.PartitionHandler{}}, nil
}

// stateTail adapts kafka.StateTail to governance.StateTail.
type stateTail struct{ t *kafka.StateTail }

func (s stateTail) Poll(ctx context.Context) ([]governance.StateLogRecord, error) {
	recs, err := s.t.Poll(ctx)
	out := make([]governance.StateLogRecord, len(recs))
	for i, r := range recs {
		out[i] = governance.StateLogRecord{Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Control: r.Control}
	}
	return out, err
}

func (s stateTail) Ends(ctx context.Context) (map[int32]int64, error) { return s.t.Ends(ctx) }

// learnSession is the writer's governance.LearnSession: the label feed
// (every partition of the labels topic), the label join's handlers, which
// learn in log mode, and the early-label stream.
type learnSession struct {
	a    *App
	feed *kafka.LabelFeed
	// open opens a labels partition's handler, which writes the records
	// it refuses to the DLQ through the feed.
	open     func(topic string, partition int32) (pipeline.PartitionHandler, error)
	handlers map[int32]pipeline.PartitionHandler
	// early is the last early-label stream entry read, committedEarly the
	// last one a commit covered; earlyJoined and earlyDone the events
	// joined and the entries read since.
	early, committedEarly  string
	earlyJoined, earlyDone []string
	// released is closed when the last commit's release is done (nil:
	// none in progress).
	released chan struct{}
}

func (s *learnSession) Start(ctx context.Context, from governance.Positions) error {
	s.early, s.committedEarly = from.Early, from.Early
	if err := s.a.join.Cache().TrimEarlyReady(ctx, from.Early); err != nil {
		return err
	}
	return s.feed.Start(ctx, from.Labels)
}

// earlyBatch is the most early-label stream entries read per learn step.
const earlyBatch = 1024

func (s *learnSession) Learn(ctx context.Context, wait time.Duration, limit int) (int, error) {
	join := s.a.join
	pollCtx, cancel := context.WithTimeout(ctx, wait)
	msgs, err := s.feed.Poll(pollCtx, limit)
	cancel()
	if err != nil {
		return 0, err
	}
	// What was polled is handled whole, even when ctx ends meanwhile: a
	// publish must cover exactly what was learned.
	ctx = context.WithoutCancel(ctx)
	consumed := len(msgs)
	size := s.a.spec.Batch.Size
	for len(msgs) > 0 {
		p := msgs[0].Partition
		n := 1
		for n < len(msgs) && n < size && msgs[n].Partition == p {
			n++
		}
		h := s.handlers[p]
		if h == nil {
			if h, err = s.open(s.a.spec.Topics.Labels, p); err != nil {
				return 0, err
			}
			s.handlers[p] = h
		}
		if err := h.Handle(ctx, msgs[:n]); err != nil {
			return 0, err
		}
		msgs = msgs[n:]
	}
	entries, err := join.Cache().ReadEarlyReady(ctx, s.early, int64(min(earlyBatch, max(1, limit-consumed))))
	if err != nil {
		return 0, err
	}
	if len(entries) > 0 {
		joined, err := join.JoinEarlyReady(ctx, entries)
		if err != nil {
			return 0, err
		}
		s.earlyJoined = append(s.earlyJoined, joined...)
		for _, e := range entries {
			s.earlyDone = append(s.earlyDone, e.ID)
		}
		s.early = entries[len(entries)-1].ID
	}
	return consumed + len(entries), nil
}

func (s *learnSession) Positions() governance.Positions {
	return governance.Positions{Labels: s.feed.Positions(), Early: s.early}
}

func (s *learnSession) Commit(ctx context.Context, kvs []governance.KeyValue) error {
	recs := make([]pipeline.OutRecord, len(kvs))
	for i, kv := range kvs {
		recs[i] = pipeline.OutRecord{Key: kv.Key, Value: kv.Value}
	}
	join := s.a.join
	if err := s.feed.Publish(ctx, recs); err != nil {
		if err == kafka.ErrPublishAborted {
			// The labels since the last commit are read and joined again.
			join.TakeJoined()
			s.early, s.earlyJoined, s.earlyDone = s.committedEarly, nil, nil
			return governance.ErrRewound
		}
		return err
	}
	// The rows this publish covers are released in the background while
	// learning goes on (one release at a time): nothing reads them again
	// but a writer restored from an older publish, and none is now.
	events, done := append(join.TakeJoined(), s.earlyJoined...), s.earlyDone
	s.waitRelease()
	released := make(chan struct{})
	s.released = released
	go func() {
		defer close(released)
		if err := join.Cache().ReleaseJoined(context.WithoutCancel(ctx), events, done); err != nil {
			// The rows expire with their TTL; a restored writer never reads
			// labels before this publish's positions again.
			s.a.log.Warn("learner state: release joined rows", "err", err)
		}
	}()
	s.committedEarly, s.earlyJoined, s.earlyDone = s.early, nil, nil
	return nil
}

// waitRelease waits for the release in progress, if any.
func (s *learnSession) waitRelease() {
	if s.released != nil {
		<-s.released
		s.released = nil
	}
}

func (s *learnSession) Close() {
	s.waitRelease()
	s.feed.Close()
	for _, h := range s.handlers {
		h.Close()
	}
}

// servedVersions is the App's served versions as governance.Served: the
// arms (champion, canary, shadow) or the champion alone.
type servedVersions struct {
	a       *App
	newBase func() (models.Learner, error)
}

func (s *servedVersions) models() []*stages.ServedModel {
	if s.a.arms == nil {
		return []*stages.ServedModel{s.a.champion}
	}
	v := s.a.arms.Load()
	out := []*stages.ServedModel{v.Champion}
	for _, m := range []*stages.ServedModel{v.Canary, v.Shadow} {
		if m != nil {
			out = append(out, m)
		}
	}
	return out
}

func (s *servedVersions) Versions() map[string]governance.Mark {
	out := map[string]governance.Mark{}
	for _, m := range s.models() {
		if _, dup := out[m.Version]; !dup {
			out[m.Version] = governance.Mark(m.Mark())
		}
	}
	return out
}

func (s *servedVersions) Snapshot(version string) (models.Learner, governance.Mark, bool) {
	for _, m := range s.models() {
		if m.Version == version {
			l, mark := m.SnapshotMarked()
			return l, governance.Mark(mark), true
		}
	}
	return nil, governance.Mark{}, false
}

func (s *servedVersions) Swap(version string, l models.Learner, mark governance.Mark) {
	first := true
	for _, m := range s.models() {
		if m.Version != version {
			continue
		}
		if !first {
			l = l.Clone() // a version on two arms gets a copy each
		}
		m.Swap(l, stages.StateMark(mark))
		first = false
	}
}

func (s *servedVersions) Stamp(version string, epoch, seq int64) {
	for _, m := range s.models() {
		if m.Version == version {
			m.Stamp(epoch, seq)
		}
	}
}

func (s *servedVersions) Base(ctx context.Context, version string) (models.Learner, error) {
	if s.a.arms == nil {
		return s.newBase()
	}
	n, err := strconv.ParseInt(version, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("version %q is not a registry version", version)
	}
	data, err := s.a.models.Artifact(ctx, s.a.spec.Model.Name, n, registry.ArtifactSnapshot)
	if err != nil {
		return nil, err
	}
	return models.UnmarshalLearner(data)
}

// newPredictionCache is the label join's cache: kept until published in
// log mode (see stages/labeljoin_log.go), deleted when joined otherwise.
func (a *App) newPredictionCache() *stages.PredictionCache {
	if a.spec.Topics.ModelState != "" {
		return stages.NewLoggedPredictionCache(a.spec, a.rdb, a.spec.Model.Version, a.joinMetrics)
	}
	return stages.NewPredictionCache(a.spec, a.rdb, a.spec.Model.Version, a.joinMetrics)
}

// loggedState is the rollout watcher's view of the log (none without one).
func (a *App) loggedState(version string) (models.Learner, stages.StateMark, bool, error) {
	if a.state == nil {
		return nil, stages.StateMark{}, false, nil
	}
	return a.state.latest(version)
}
