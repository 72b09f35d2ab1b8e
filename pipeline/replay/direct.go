package replay

import (
	"context"
	"errors"
	"fmt"

	"github.com/driftline/driftline/pipeline"
)

// BatchSource is history as ready batches: rows that went through the
// first stages already (a lake's rows were decoded, validated, de-duplicated
// and anonymized before they were stored).
type BatchSource interface {
	// Rows is the number of rows Batches will give, or an estimate of it:
	// the progress total.
	Rows() (int64, error)
	// Batches calls fn with each batch of at most maxRows rows of one
	// source partition, in a fixed order, until the source ends or fn
	// fails. The batch is reused after fn returns.
	Batches(ctx context.Context, maxRows int, fn func(*pipeline.Batch) error) error
}

// DirectConfig configures a Direct replay.
type DirectConfig struct {
	// Stages run on every batch, in order, before the visitor sees it.
	// A Direct replay runs one batch at a time, so one chain serves every
	// partition, read one after the other.
	Stages []pipeline.Stage
	// BatchSize is the most input records per batch (default 1).
	BatchSize int
	// Progress, when set, counts the input rows.
	Progress *Progress
}

// Direct replays history without transactions or checkpoints: sources
// are read in a fixed order (a Kafka range partition by partition in
// offset order; a BatchSource in its order), one batch at a time, so the
// same input and stages give the same batches. Each batch goes through
// the stages, then to a visitor (a target, a backtest). A Direct is used
// by one goroutine.
type Direct struct {
	stages    []pipeline.Stage
	batchSize int
	progress  *Progress
	inputs    int64
	rejected  int64
	dups      int64
}

// Close closes the stages that hold resources (pipeline.CloseStages); call
// it once the replay is done.
func (d *Direct) Close() error { return pipeline.CloseStages(d.stages) }

// NewDirect builds a Direct replay.
func NewDirect(cfg DirectConfig) (*Direct, error) {
	if len(cfg.Stages) == 0 {
		return nil, errors.New("replay: no stages")
	}
	return &Direct{stages: cfg.Stages, batchSize: max(cfg.BatchSize, 1), progress: cfg.Progress}, nil
}

// Inputs is the number of input rows replayed so far.
func (d *Direct) Inputs() int64 { return d.inputs }

// Rejected is the number of those rows that a stage rejected.
func (d *Direct) Rejected() int64 { return d.rejected }

// Duplicates is the number of those rows the dedupe stage dropped as
// repeats of an earlier event id; the others are predictions or rejected.
func (d *Direct) Duplicates() int64 { return d.dups }

func (d *Direct) process(ctx context.Context, b *pipeline.Batch, visit func(*pipeline.Batch) error) error {
	for _, st := range d.stages {
		if err := st.Process(ctx, b); err != nil {
			return fmt.Errorf("%s: %w", st.Name(), err)
		}
	}
	for i := range b.Len() {
		switch {
		case b.OK(i):
		case b.State[i] == pipeline.RowDuplicate:
			d.dups++
		default:
			d.rejected++
		}
	}
	d.inputs += int64(b.Len())
	if d.progress != nil {
		d.progress.Add(int64(b.Len()))
	}
	return visit(b)
}

// ReplayRanges reads the ranges of topic from in, partition after
// partition, and calls visit with each processed batch, in order.
func (d *Direct) ReplayRanges(ctx context.Context, in Input, topic string, ranges []Range, visit func(*pipeline.Batch) error) error {
	if d.progress != nil {
		var total int64
		for _, r := range ranges {
			total += r.End - r.Start
		}
		d.progress.Begin(total, 0)
	}
	var b pipeline.Batch
	defer b.Reset(nil)
	for _, r := range ranges {
		if r.End <= r.Start {
			continue
		}
		if err := d.replayRange(ctx, in, topic, r, &b, visit); err != nil {
			return err
		}
	}
	return nil
}

func (d *Direct) replayRange(ctx context.Context, in Input, topic string, r Range, b *pipeline.Batch, visit func(*pipeline.Batch) error) error {
	rd, err := in.OpenRange(ctx, topic, r.Partition, r.Start, r.End)
	if err != nil {
		return err
	}
	defer rd.Close()
	var (
		msgs []pipeline.Message
		recs []Record
	)
	flush := func() error {
		if len(msgs) == 0 {
			return nil
		}
		b.Reset(msgs)
		err := d.process(ctx, b, visit)
		msgs = nil
		return err
	}
	for next := r.Start; next < r.End; {
		recs, err = rd.Fetch(ctx, recs[:0])
		if err := ctx.Err(); err != nil {
			return err
		}
		if err != nil {
			return err
		}
		for _, rec := range recs {
			if next >= r.End {
				break
			}
			if rec.Offset < next {
				continue
			}
			if rec.Offset >= r.End {
				next = r.End
				break
			}
			next = rec.Offset + 1
			if !rec.Control {
				msgs = append(msgs, rec.Message)
			}
			if len(msgs) >= d.batchSize {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// ReplayBatches reads src and calls visit with each processed batch, in
// order.
func (d *Direct) ReplayBatches(ctx context.Context, src BatchSource, visit func(*pipeline.Batch) error) error {
	if d.progress != nil {
		total, err := src.Rows()
		if err != nil {
			return err
		}
		d.progress.Begin(total, 0)
	}
	return src.Batches(ctx, d.batchSize, func(b *pipeline.Batch) error { return d.process(ctx, b, visit) })
}
