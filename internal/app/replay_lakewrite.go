package app

import (
	"context"
	"sync"

	"github.com/driftline/driftline/connectors/lake"
	"github.com/driftline/driftline/pipeline"
)

// lakeWriteDepth is how many scored batches a lakeWriter holds: enough
// for the reading and scoring of the next batches to run while one is
// encoded.
const lakeWriteDepth = 4

// lakeWriter writes a direct replay's scored batches into its target
// lake on a goroutine of its own, so that the Parquet encoding (the
// larger part of a lake replay's CPU) overlaps the reading, featurizing
// and scoring of the next batches. It writes the batches in the order
// they are handed over, one at a time, so the files are the same as
// writing them in line. write is called by one goroutine; finish once,
// after the last write, whatever happened.
type lakeWriter struct {
	target  *lake.ReplayTarget
	version string
	queue   chan *pipeline.Batch
	free    chan *pipeline.Batch
	done    chan struct{}
	failed  chan struct{}

	mu  sync.Mutex
	err error // the first write error
}

func newLakeWriter(target *lake.ReplayTarget, version string) *lakeWriter {
	w := &lakeWriter{
		target: target, version: version,
		queue: make(chan *pipeline.Batch, lakeWriteDepth), free: make(chan *pipeline.Batch, lakeWriteDepth+1),
		done: make(chan struct{}), failed: make(chan struct{}),
	}
	for range lakeWriteDepth + 1 {
		w.free <- new(pipeline.Batch)
	}
	go w.loop()
	return w
}

func (w *lakeWriter) loop() {
	defer close(w.done)
	for b := range w.queue {
		if w.firstErr() == nil {
			if err := w.target.WriteBatch(b, w.version); err != nil {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
				close(w.failed)
			}
		}
		b.Reset(nil) // releases its record
		w.free <- b
	}
}

func (w *lakeWriter) firstErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// write hands over a copy of what WriteBatch reads of b (its record,
// retained, and its messages, row states, feature rows and scores), so
// that b can be reused at once. It returns an earlier write's error.
func (w *lakeWriter) write(ctx context.Context, b *pipeline.Batch) error {
	var c *pipeline.Batch
	select {
	case <-w.failed:
		return w.firstErr()
	case <-ctx.Done():
		return ctx.Err()
	case c = <-w.free:
	}
	c.Reset(append(c.Messages[:0], b.Messages...))
	c.Topic, c.Partition = b.Topic, b.Partition
	copy(c.State, b.State)
	if b.Record != nil {
		b.Record.Retain()
		c.Record = b.Record
	}
	c.Features.Row = append(c.Features.Row, b.Features.Row...)
	c.Scores = append(c.Scores, b.Scores...)
	w.queue <- c
	return nil
}

// finish waits for the batches handed over to be written and returns the
// first write error.
func (w *lakeWriter) finish() error {
	close(w.queue)
	<-w.done
	return w.firstErr()
}
