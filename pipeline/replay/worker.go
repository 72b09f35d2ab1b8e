package replay

import (
	"context"
	"fmt"
	"slices"

	"github.com/driftline/driftline/pipeline"
)

// worker replays one partition's range.
type worker struct {
	cfg     *Config
	metrics *pipeline.Metrics
	r       Range
	resume  int64
	commits chan<- *chunk
}

// chunkSink copies a micro-batch's outputs for the committer, counting
// predictions and rejected rows, and dropping rejected rows when the run
// has no DLQ topic.
type chunkSink struct {
	recs              []pipeline.OutRecord
	outputs, rejected int64
	topic             string
}

func (s *chunkSink) Write(_ context.Context, recs []pipeline.OutRecord) error {
	s.recs = slices.Grow(s.recs, len(recs))
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
		r := pipeline.OutRecord{Topic: o.Topic, Key: slices.Clone(o.Key), Value: slices.Clone(o.Value)}
		if len(o.Headers) > 0 {
			r.Headers = make([]pipeline.Header, len(o.Headers))
			for j, h := range o.Headers {
				r.Headers[j] = pipeline.Header{Key: h.Key, Value: slices.Clone(h.Value)}
			}
		}
		s.recs = append(s.recs, r)
	}
	return nil
}

func (w *worker) run(ctx context.Context) error {
	list, err := w.cfg.NewStages()
	if err != nil {
		return err
	}
	sink := &chunkSink{topic: w.cfg.OutputTopic}
	dlq := w.cfg.DLQTopic
	if dlq == "" {
		dlq = dropTopic
	}
	rc := pipeline.RunnerConfig{Stages: list, Sink: sink, DLQTopic: dlq, Metrics: w.metrics,
		RecordLimit: w.cfg.RecordLimit, PropagateHeaders: w.cfg.PropagateHeaders}
	if w.cfg.NewDLQPayload != nil {
		rc.DLQPayload = w.cfg.NewDLQPayload()
	}
	runner, err := pipeline.NewRunner(rc)
	if err != nil {
		return err
	}
	defer runner.Close()
	from := w.resume
	if w.cfg.Stateful {
		from = w.r.Start // fast-forward to rebuild the stages' state
	}
	rd, err := w.cfg.Input.OpenRange(ctx, w.cfg.Topic, w.r.Partition, from, w.r.End)
	if err != nil {
		return err
	}
	defer rd.Close()

	var (
		msgs    []pipeline.Message
		next    = from
		chStart = from
		pending []chan error
		recs    []Record
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
			ch := &chunk{partition: w.r.Partition, recs: sink.recs, next: next, start: max(chStart, w.resume), outputs: sink.outputs, rejected: sink.rejected, records: int64(len(msgs)), done: make(chan error, 1)}
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
			ch := &chunk{partition: w.r.Partition, next: next, start: max(chStart, w.resume), done: make(chan error, 1)}
			if err := w.send(ctx, ch); err != nil {
				return err
			}
			pending = append(pending, ch.done)
		}
		msgs, chStart = nil, next
		return nil
	}
	for next < w.r.End {
		recs, err = rd.Fetch(ctx, recs[:0])
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if err != nil {
			return err
		}
		for _, r := range recs {
			if next >= w.r.End {
				break
			}
			if r.Offset < next {
				continue
			}
			if r.Offset >= w.r.End {
				next = w.r.End
				break
			}
			next = r.Offset + 1
			if !r.Control {
				msgs = append(msgs, r.Message)
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

func (w *worker) send(ctx context.Context, ch *chunk) error {
	select {
	case w.commits <- ch:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
