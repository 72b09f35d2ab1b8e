package main

// The replay engine: it pushes a range of the input topic through the
// spec's stages (the same constructors as the live data plane) and writes
// the predictions, marked with the shadow arm, to a backfill topic.
//
// # Exactly once
//
// One transactional producer (transactional id "driftline-replay-<run>")
// writes every output. Each transaction holds the outputs of one or more
// whole micro-batches ("chunks") and, in the same transaction, one
// checkpoint record per partition in it: key "<run>/<topic>/<partition>",
// value the next input offset to process. So a chunk's outputs and its
// checkpoint become visible together or not at all.
//
// On start, the producer initializes its id, which fences a previous
// process of the same run (killed or still running) and makes the broker
// abort its open transaction. Only then are the checkpoints read, with
// read-committed isolation: each partition resumes at the offset its last
// committed checkpoint names. Committed chunks are never redone; an aborted
// chunk's outputs are never visible to read-committed consumers and it is
// redone. Consumers of the backfill topic must read with
// kgo.FetchIsolationLevel(kgo.ReadCommitted()).
//
// # Determinism
//
// A redone chunk must give the same outputs. The stages are deterministic
// functions of the input and their state; the model does not learn during
// replay; nothing in a prediction depends on the clock. The one exception
// is a passthrough field the spec encrypts: AES-GCM takes a random nonce,
// so its ciphertext differs between runs while its plaintext does not. The stateful stages
// (dedupe, entity aggregates) keep their state in Redis under a key prefix
// of their own, spec.redis.key_prefix + "replay:<run>:<nonce>:", fresh for
// every process, so replay never reads or writes the live pipeline's state
// (a replayed event is never a duplicate of its live run) and never sees
// state left by an aborted chunk. When a partition resumes past its start,
// the worker first re-runs the stages over the already committed part
// without writing anything ("fast-forward"), which rebuilds exactly the
// state an uninterrupted run would have at the checkpoint. Partitions are
// independent (one stage chain each, as in the live data plane, where
// events are keyed by entity), so running them in parallel does not change
// any output. The state keys expire with the spec's TTLs.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
)

// replayRange is the offsets [Start, End) of one input partition.
type replayRange struct {
	Partition  int32
	Start, End int64
}

// replayConfig is one replay run.
type replayConfig struct {
	// Spec is the pipeline spec, with brokers and Redis filled in.
	Spec *pipeline.Spec
	// Ranges are the input offsets to replay, one per partition.
	Ranges []replayRange
	// ToTopic receives the predictions, marked with the shadow arm.
	ToTopic string
	// ToDLQ receives rejected rows; "" drops them (they are counted).
	ToDLQ string
	// CheckpointTopic holds the committed checkpoints (created compacted).
	CheckpointTopic string
	// RunID names the run: transactional id, checkpoint keys, state prefix.
	RunID string
	// Model scores; its arm must be shadow.
	Model *stages.ServedModel
	// BatchSize is the most input records per micro-batch (one chunk).
	BatchSize int
	// Parallel is the most partitions replayed at once.
	Parallel int
	// Rdb holds the stages' state; nil when no stage needs Redis.
	Rdb redis.UniversalClient
	// Progress, when set, is told about committed chunks.
	Progress *replayProgress
	Log      *slog.Logger
	// TxnTimeout bounds how long a killed run's open transaction can hold
	// back read-committed consumers (default 30s).
	TxnTimeout time.Duration
}

// replayResult sums up a run.
type replayResult struct {
	RunID    string
	Total    int64 // input offsets in the ranges
	Resumed  int64 // offsets already committed by earlier processes
	Inputs   int64 // input records processed and committed by this process
	Outputs  int64 // predictions written
	Rejected int64 // rows rejected (written to ToDLQ, or dropped)
	Txns     int64
}

// replayCheckpoint is the value of a checkpoint record.
type replayCheckpoint struct {
	Run       string `json:"run"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Next      int64  `json:"next"`
	End       int64  `json:"end"`
}

const dropTopic = "\x00driftline.replay.drop"

func (c *replayConfig) validate() error {
	switch {
	case c.Spec == nil:
		return errors.New("replay: no spec")
	case c.ToTopic == "":
		return errors.New("--to-topic is required")
	case c.CheckpointTopic == "":
		return errors.New("--checkpoint-topic must not be empty")
	case c.RunID == "":
		return errors.New("replay: no run id")
	case c.Model == nil || c.Model.Arm != stages.ArmShadow:
		return errors.New("replay: the model must serve the shadow arm")
	case c.BatchSize < 1:
		return errors.New("--batch must be at least 1")
	case c.Parallel < 1:
		return errors.New("--parallel must be at least 1")
	case c.ToTopic == c.Spec.Topics.Predictions || c.ToTopic == c.Spec.Topics.Input:
		return fmt.Errorf("--to-topic %q is a live topic of the spec; backfill goes to a topic of its own", c.ToTopic)
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.TxnTimeout == 0 {
		c.TxnTimeout = 30 * time.Second
	}
	return nil
}

// defaultRunID derives a run id from everything that determines the
// outputs, so that running the same command again resumes (or finds the
// run done) instead of starting over.
func defaultRunID(spec *pipeline.Spec, ranges []replayRange, toTopic, modelVersion, modelDigest string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00", spec.Name, spec.Topics.Input, toTopic, modelVersion, modelDigest)
	for _, r := range ranges {
		fmt.Fprintf(h, "%d:%d-%d\x00", r.Partition, r.Start, r.End)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// replayChunk is one committed unit: a micro-batch's outputs and the
// input offset after it.
type replayChunk struct {
	partition int32
	recs      []*kgo.Record
	next      int64
	start     int64 // first offset of the chunk, for progress
	outputs   int64
	rejected  int64
	done      chan error
}

// runReplay replays cfg.Ranges exactly once into cfg.ToTopic.
func runReplay(ctx context.Context, cfg replayConfig, brokers []string, extra ...kgo.Opt) (replayResult, error) {
	if err := cfg.validate(); err != nil {
		return replayResult{}, err
	}
	res := replayResult{RunID: cfg.RunID}
	for _, r := range cfg.Ranges {
		res.Total += r.End - r.Start
	}
	base := append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, extra...)
	admCl, err := kgo.NewClient(base...)
	if err != nil {
		return res, fmt.Errorf("kafka client: %w", err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	if err := ensureTopic(ctx, adm, cfg.CheckpointTopic, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}); err != nil {
		return res, fmt.Errorf("--checkpoint-topic %s: %w", cfg.CheckpointTopic, err)
	}
	parts, err := topicPartitions(ctx, adm, cfg.Spec.Topics.Input)
	if err != nil {
		return res, err
	}
	if err := ensureTopic(ctx, adm, cfg.ToTopic, parts, nil); err != nil {
		return res, fmt.Errorf("--to-topic %s: %w", cfg.ToTopic, err)
	}

	// Fence earlier processes of this run before reading the checkpoints.
	txn, err := kgo.NewClient(append(slices.Clone(base),
		kgo.TransactionalID("driftline-replay-"+cfg.RunID),
		kgo.TransactionTimeout(cfg.TxnTimeout),
		kgo.ProducerLinger(time.Millisecond),
		kgo.ProducerBatchMaxBytes(4<<20),
	)...)
	if err != nil {
		return res, fmt.Errorf("kafka transactional client: %w", err)
	}
	defer txn.Close()
	if _, _, err := txn.ProducerID(ctx); err != nil {
		return res, fmt.Errorf("init transactional producer: %w", err)
	}
	ckpts, err := readCheckpoints(ctx, adm, base, cfg.CheckpointTopic, cfg.RunID, cfg.Spec.Topics.Input)
	if err != nil {
		return res, fmt.Errorf("read checkpoints from %s: %w", cfg.CheckpointTopic, err)
	}
	resume := map[int32]int64{}
	for _, r := range cfg.Ranges {
		next := r.Start
		if c, ok := ckpts[r.Partition]; ok && c.Next > next {
			next = min(c.Next, r.End)
		}
		resume[r.Partition] = next
		res.Resumed += next - r.Start
	}
	if cfg.Progress != nil {
		cfg.Progress.begin(res.Total, res.Resumed)
	}
	cfg.Log.Info("replay starting", "run", cfg.RunID, "partitions", len(cfg.Ranges), "offsets", res.Total, "already_committed", res.Resumed)

	nonce := make([]byte, 4)
	_, _ = rand.Read(nonce)
	spec := *cfg.Spec
	spec.Topics.Predictions = cfg.ToTopic
	spec.Redis.KeyPrefix = cfg.Spec.Redis.KeyPrefix + "replay:" + cfg.RunID + ":" + hex.EncodeToString(nonce) + ":"
	metrics, err := pipeline.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		return res, err
	}
	keys, err := stages.LoadKeys(&spec.Stages.Anonymize)
	if err != nil {
		return res, fmt.Errorf("stages.anonymize: %w", err)
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	commits := make(chan *replayChunk, 2*cfg.Parallel)
	committerDone := make(chan struct{})
	var commitErr error
	go func() {
		defer close(committerDone)
		commitErr = commitLoop(ctx, txn, cfg, commits, &res, cancel)
	}()

	var (
		wg       sync.WaitGroup
		sem      = make(chan struct{}, cfg.Parallel)
		errOnce  sync.Once
		firstErr error
	)
	for _, r := range cfg.Ranges {
		if resume[r.Partition] >= r.End {
			continue
		}
		wg.Add(1)
		go func(r replayRange) {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			w := replayWorker{cfg: &cfg, spec: &spec, keys: keys, metrics: metrics, r: r, resume: resume[r.Partition], commits: commits}
			if err := w.run(ctx, base); err != nil {
				errOnce.Do(func() { firstErr = err })
				cancel(err)
			}
		}(r)
	}
	wg.Wait()
	close(commits)
	<-committerDone
	if commitErr != nil {
		return res, commitErr
	}
	if firstErr != nil {
		return res, firstErr
	}
	if err := context.Cause(ctx); err != nil {
		return res, err
	}
	if cfg.Progress != nil {
		cfg.Progress.finish()
	}
	return res, nil
}

// commitLoop writes chunks in transactions, each with the checkpoints of
// the partitions it covers, until commits is closed.
func commitLoop(ctx context.Context, txn *kgo.Client, cfg replayConfig, commits <-chan *replayChunk, res *replayResult, cancel context.CancelCauseFunc) error {
	const maxRecs = 50_000
	fail := func(group []*replayChunk, err error) error {
		cancel(err)
		for _, ch := range group {
			ch.done <- err
		}
		for ch := range commits { // unblock workers
			ch.done <- err
		}
		return err
	}
	for {
		var group []*replayChunk
		first, ok := <-commits
		if !ok {
			return nil
		}
		group = append(group, first)
		n := len(first.recs)
	more:
		for n < maxRecs {
			select {
			case ch, ok := <-commits:
				if !ok {
					break more
				}
				group = append(group, ch)
				n += len(ch.recs)
			default:
				break more
			}
		}
		if err := commitGroup(ctx, txn, cfg, group); err != nil {
			return fail(group, err)
		}
		res.Txns++
		for _, ch := range group {
			res.Inputs += ch.next - ch.start
			res.Outputs += ch.outputs
			res.Rejected += ch.rejected
			if cfg.Progress != nil {
				cfg.Progress.add(ch.next - ch.start)
			}
			ch.done <- nil
		}
	}
}

func commitGroup(ctx context.Context, txn *kgo.Client, cfg replayConfig, group []*replayChunk) error {
	if err := txn.BeginTransaction(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	var (
		mu       sync.Mutex
		firstErr error
	)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}
	}
	last := map[int32]int64{}
	var order []int32
	for _, ch := range group {
		for _, r := range ch.recs {
			txn.Produce(ctx, r, promise)
		}
		if _, ok := last[ch.partition]; !ok {
			order = append(order, ch.partition)
		}
		last[ch.partition] = ch.next
	}
	ends := map[int32]int64{}
	for _, r := range cfg.Ranges {
		ends[r.Partition] = r.End
	}
	for _, p := range order {
		v, _ := json.Marshal(replayCheckpoint{Run: cfg.RunID, Topic: cfg.Spec.Topics.Input, Partition: p, Next: last[p], End: ends[p]})
		txn.Produce(ctx, &kgo.Record{Topic: cfg.CheckpointTopic, Key: checkpointKey(cfg.RunID, cfg.Spec.Topics.Input, p), Value: v}, promise)
	}
	flushErr := txn.Flush(ctx)
	mu.Lock()
	err := cmp2(flushErr, firstErr)
	mu.Unlock()
	if err != nil {
		abortCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = txn.AbortBufferedRecords(abortCtx)
		_ = txn.EndTransaction(abortCtx, kgo.TryAbort)
		return fmt.Errorf("produce: %w", err)
	}
	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

func cmp2(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func checkpointKey(run, topic string, p int32) []byte {
	return []byte(run + "/" + topic + "/" + strconv.Itoa(int(p)))
}

// readCheckpoints reads the committed checkpoints of run for topic.
func readCheckpoints(ctx context.Context, adm *kadm.Client, base []kgo.Opt, ckptTopic, run, topic string) (map[int32]replayCheckpoint, error) {
	ends, err := adm.ListCommittedOffsets(ctx, ckptTopic)
	if err != nil {
		return nil, err
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	out := map[int32]replayCheckpoint{}
	if len(want) == 0 {
		return out, nil
	}
	cl, err := kgo.NewClient(append(slices.Clone(base),
		kgo.ConsumeTopics(ckptTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	prefix := run + "/" + topic + "/"
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return nil, ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset+1 >= want[r.Partition] {
				delete(want, r.Partition)
			}
			if r.Attrs.IsControl() || len(r.Key) <= len(prefix) || string(r.Key[:len(prefix)]) != prefix {
				return
			}
			var c replayCheckpoint
			if json.Unmarshal(r.Value, &c) == nil && c.Run == run && c.Topic == topic {
				out[c.Partition] = c
			}
		})
	}
	return out, nil
}

func ensureTopic(ctx context.Context, adm *kadm.Client, name string, partitions int32, configs map[string]*string) error {
	resp, err := adm.CreateTopic(ctx, partitions, -1, configs, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return err
	}
	// Wait until the topic's metadata is served.
	for i := 0; ; i++ {
		n, err := topicPartitions(ctx, adm, name)
		if err == nil && n > 0 {
			return nil
		}
		if i == 100 {
			return fmt.Errorf("topic %s not ready: %v", name, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func topicPartitions(ctx context.Context, adm *kadm.Client, topic string) (int32, error) {
	td, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return 0, err
	}
	t, ok := td[topic]
	if !ok || t.Err != nil {
		return 0, fmt.Errorf("topic %s does not exist", topic)
	}
	return int32(len(t.Partitions)), nil
}

// replayWorker replays one partition's range.
type replayWorker struct {
	cfg     *replayConfig
	spec    *pipeline.Spec
	keys    stages.Keys
	metrics *pipeline.Metrics
	r       replayRange
	resume  int64
	commits chan<- *replayChunk
}

// replaySink copies a micro-batch's outputs into Kafka records for the
// backfill topic, dropping rejected rows when there is no --to-dlq.
type replaySink struct {
	recs              []*kgo.Record
	outputs, rejected int64
	topic, dlq        string
}

func (s *replaySink) Write(_ context.Context, recs []pipeline.OutRecord) error {
	for i := range recs {
		o := &recs[i]
		if o.Topic == dropTopic {
			s.rejected++
			continue
		}
		if o.Topic == s.topic {
			s.outputs++
		} else {
			s.rejected++
		}
		r := &kgo.Record{Topic: o.Topic, Key: slices.Clone(o.Key), Value: slices.Clone(o.Value)}
		for _, h := range o.Headers {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: slices.Clone(h.Value)})
		}
		s.recs = append(s.recs, r)
	}
	return nil
}

// replayStages builds a partition's stages the way the live data plane's
// openPartition does, with the replay's spec (shadow model, backfill
// topic, replay key prefix).
func replayStages(spec *pipeline.Spec, rdb redis.UniversalClient, keys stages.Keys, model *stages.ServedModel) ([]pipeline.Stage, error) {
	list, err := stages.PreparationChain(spec, rdb, keys)
	if err != nil {
		return nil, err
	}
	return append(list, stages.NewScore(spec, model, keys.AESKeyID)), nil
}

func (w *replayWorker) run(ctx context.Context, base []kgo.Opt) error {
	spec := w.spec
	list, err := replayStages(spec, w.cfg.Rdb, w.keys, w.cfg.Model)
	if err != nil {
		return err
	}
	sink := &replaySink{topic: w.cfg.ToTopic}
	dlq := w.cfg.ToDLQ
	if dlq == "" {
		dlq = dropTopic
	}
	runner, err := pipeline.NewRunner(pipeline.RunnerConfig{Stages: list, Sink: sink, DLQTopic: dlq, Metrics: w.metrics})
	if err != nil {
		return err
	}
	defer runner.Close()
	stateful := spec.Stages.Dedupe.On() || spec.Stages.Featurize.Entity != nil
	from := w.resume
	if stateful {
		from = w.r.Start // fast-forward to rebuild the stages' state
	}
	topic := spec.Topics.Input
	cl, err := kgo.NewClient(append(slices.Clone(base),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {w.r.Partition: kgo.NewOffset().At(from)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxPartitionBytes(8<<20),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()

	var (
		msgs    []pipeline.Message
		next    = from
		chStart = from
		pending []chan error
	)
	waitPending := func() error {
		for _, d := range pending {
			select {
			case err := <-d:
				if err != nil {
					return err
				}
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		pending = pending[:0]
		return nil
	}
	flush := func() error {
		ff := next <= w.resume // the whole chunk is already committed
		if len(msgs) > 0 {
			sink.recs, sink.outputs, sink.rejected = nil, 0, 0
			if err := runner.Handle(ctx, msgs); err != nil {
				return fmt.Errorf("partition %d offsets %d-%d: %w", w.r.Partition, chStart, next-1, err)
			}
			if ff {
				msgs, chStart = msgs[:0], next
				return nil
			}
			ch := &replayChunk{partition: w.r.Partition, recs: sink.recs, next: next, start: max(chStart, w.resume), outputs: sink.outputs, rejected: sink.rejected, done: make(chan error, 1)}
			if err := w.send(ctx, ch); err != nil {
				return err
			}
			pending = append(pending, ch.done)
			if len(pending) > 2 {
				if err := waitPending(); err != nil {
					return err
				}
			}
		} else if !ff && next > chStart {
			// Only control records: still move the checkpoint.
			ch := &replayChunk{partition: w.r.Partition, next: next, start: max(chStart, w.resume), done: make(chan error, 1)}
			if err := w.send(ctx, ch); err != nil {
				return err
			}
			pending = append(pending, ch.done)
		}
		msgs, chStart = nil, next
		return nil
	}
	for next < w.r.End {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return fmt.Errorf("fetch partition %d: %w", w.r.Partition, ferr)
		}
		for it := fs.RecordIter(); !it.Done() && next < w.r.End; {
			r := it.Next()
			if r.Offset < next {
				continue
			}
			if r.Offset >= w.r.End {
				next = w.r.End
				break
			}
			next = r.Offset + 1
			if !r.Attrs.IsControl() {
				msgs = append(msgs, pipeline.Message{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp})
			}
			if len(msgs) >= w.cfg.BatchSize || next == w.resume {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	return waitPending()
}

func (w *replayWorker) send(ctx context.Context, ch *replayChunk) error {
	select {
	case w.commits <- ch:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
