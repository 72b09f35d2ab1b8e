package replay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftline/driftline/pipeline"
)

// Config is one checkpointed replay run.
type Config struct {
	// Topic is the input topic; Ranges its offsets to replay, one per
	// partition.
	Topic  string
	Ranges []Range
	// RunID names the run: the committer's transactions and the
	// checkpoints are the run's.
	RunID string
	// NewStages builds one partition's stage chain (called once per
	// partition replayed). Required.
	NewStages func() ([]pipeline.Stage, error)
	// Stateful says that the stages keep state across batches (dedupe,
	// entity aggregates): a partition that resumes past its start is
	// fast-forwarded over its committed part first (see the package doc).
	Stateful bool
	// OutputTopic is the topic of the predictions: outputs to it count as
	// Result.Outputs, outputs to DLQTopic as Result.Rejected.
	OutputTopic string
	// DLQTopic receives rejected rows; "" drops them (they are counted).
	DLQTopic string
	// NewDLQPayload, when set, gives each partition's chain the function
	// that writes a DLQ record's value (the spec's dlq_payload, such as an
	// encrypting one, which is not safe for concurrent use); nil keeps the
	// input as is. RecordLimit bounds a record of a topic, so that an
	// oversized input's DLQ copy is truncated to fit (nil: no bound), and
	// PropagateHeaders names the input headers copied to the outputs: all
	// as pipeline.RunnerConfig, so that a replay writes what the live
	// pipeline writes.
	NewDLQPayload    func() pipeline.DLQPayloadFunc
	RecordLimit      func(topic string) int
	PropagateHeaders []string
	// BatchSize is the most input records per micro-batch (one chunk);
	// Parallel the most partitions replayed at once. Both at least 1.
	BatchSize, Parallel int
	// Input reads the ranges; Committer writes the outputs and the
	// checkpoints. Required.
	Input     Input
	Committer Committer
	// Progress, when set, is told about committed chunks, and finished
	// when the run completes.
	Progress *Progress
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Validate checks the config; its errors name the field at fault.
func (c *Config) Validate() error {
	switch {
	case c.Topic == "":
		return errors.New("replay: no input topic")
	case c.OutputTopic == "":
		return errors.New("replay: no output topic")
	case c.RunID == "":
		return errors.New("replay: no run id")
	case c.NewStages == nil:
		return errors.New("replay: no stage constructor")
	case c.BatchSize < 1:
		return fmt.Errorf("replay: batch size must be at least 1, got %d", c.BatchSize)
	case c.Parallel < 1:
		return fmt.Errorf("replay: parallel must be at least 1, got %d", c.Parallel)
	case c.Input == nil:
		return errors.New("replay: no input")
	case c.Committer == nil:
		return errors.New("replay: no committer")
	}
	for _, r := range c.Ranges {
		if r.End < r.Start {
			return fmt.Errorf("replay: partition %d ends at %d, before its start %d", r.Partition, r.End, r.Start)
		}
	}
	return nil
}

// Result sums up a run.
type Result struct {
	RunID    string
	Total    int64 // input offsets in the ranges
	Resumed  int64 // offsets already committed by earlier processes
	Inputs   int64 // input offsets processed and committed by this process
	Outputs  int64 // predictions written
	Rejected int64 // rows rejected (written to DLQTopic, or dropped)
	Txns     int64 // commits
	// Records are the data records among Inputs: each is a prediction, a
	// rejected row or a Duplicate (dropped by the dedupe stage); Inputs -
	// Records are control records (transaction markers), which carry no
	// data. So Inputs = Outputs + Rejected + Duplicates + (Inputs - Records).
	Records    int64
	Duplicates int64
}

// dropTopic is the DLQ topic of a run without one: the sink counts and
// drops its records.
const dropTopic = "\x00driftline.replay.drop"

// maxCommitRecords bounds the output records of one commit: the committer
// groups the chunks waiting for it up to this many.
const maxCommitRecords = 50_000

// chunk is one committed unit: a micro-batch's outputs and the input
// offset after it.
type chunk struct {
	partition int32
	recs      []pipeline.OutRecord
	next      int64
	start     int64 // first offset of the chunk, for progress
	outputs   int64
	rejected  int64
	records   int64 // data records (the rest of the offsets are control records)
	done      chan error
}

// Run replays cfg.Ranges exactly once: see the package doc. It returns
// the result so far with any error; cancelling ctx stops it (the chunks
// committed stay committed, and a new run of the same id resumes after
// them).
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	res := Result{RunID: cfg.RunID}
	for _, r := range cfg.Ranges {
		res.Total += r.End - r.Start
	}
	// Fence earlier processes of this run before reading the checkpoints.
	if err := cfg.Committer.Fence(ctx); err != nil {
		return res, err
	}
	ckpts, err := cfg.Committer.Checkpoints(ctx, cfg.RunID, cfg.Topic)
	if err != nil {
		return res, fmt.Errorf("read checkpoints: %w", err)
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
		cfg.Progress.Begin(res.Total, res.Resumed)
	}
	log.Info("replay starting", "run", cfg.RunID, "partitions", len(cfg.Ranges), "offsets", res.Total, "already_committed", res.Resumed)

	metrics, err := pipeline.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		return res, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	commits := make(chan *chunk, 2*cfg.Parallel)
	committerDone := make(chan struct{})
	var commitErr error
	go func() {
		defer close(committerDone)
		commitErr = commitLoop(ctx, &cfg, commits, &res, cancel)
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
		go func(r Range) {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			w := worker{cfg: &cfg, metrics: metrics, r: r, resume: resume[r.Partition], commits: commits}
			if err := w.run(ctx); err != nil {
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
		cfg.Progress.Finish()
	}
	return res, nil
}

// commitLoop commits chunks, grouped up to maxCommitRecords records, each
// group with the checkpoints of the partitions it covers, until commits
// is closed.
func commitLoop(ctx context.Context, cfg *Config, commits <-chan *chunk, res *Result, cancel context.CancelCauseFunc) error {
	fail := func(group []*chunk, err error) error {
		cancel(err)
		for _, ch := range group {
			ch.done <- err
		}
		for ch := range commits { // unblock workers
			ch.done <- err
		}
		return err
	}
	ends := map[int32]int64{}
	for _, r := range cfg.Ranges {
		ends[r.Partition] = r.End
	}
	var outputs [][]pipeline.OutRecord
	for {
		first, ok := <-commits
		if !ok {
			return nil
		}
		group := []*chunk{first}
		n := len(first.recs)
	more:
		for n < maxCommitRecords {
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
		outputs = outputs[:0]
		var ckpts []Checkpoint
		at := map[int32]int{}
		for _, ch := range group {
			outputs = append(outputs, ch.recs)
			c := Checkpoint{Run: cfg.RunID, Topic: cfg.Topic, Partition: ch.partition, Next: ch.next, End: ends[ch.partition]}
			if i, ok := at[ch.partition]; ok {
				ckpts[i] = c
			} else {
				at[ch.partition] = len(ckpts)
				ckpts = append(ckpts, c)
			}
		}
		err := cfg.Committer.Commit(ctx, outputs, ckpts)
		clear(outputs)
		if err != nil {
			return fail(group, err)
		}
		res.Txns++
		for _, ch := range group {
			res.Inputs += ch.next - ch.start
			res.Outputs += ch.outputs
			res.Rejected += ch.rejected
			res.Records += ch.records
			res.Duplicates += ch.records - ch.outputs - ch.rejected
			if cfg.Progress != nil {
				cfg.Progress.Add(ch.next - ch.start)
			}
			ch.done <- nil
		}
	}
}
