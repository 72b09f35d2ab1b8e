package pipeline

import "github.com/apache/arrow-go/v18/arrow"

// Hold records that the batch's outputs point into buf, a buffer from
// b.Pool: it goes back to the pool when the batch's Lease is released.
// Without a Pool it does nothing.
func (b *Batch) Hold(buf []byte) {
	if b.Pool != nil && cap(buf) > 0 {
		b.held = append(b.held, buf)
	}
}

// Lease is what a batch's outputs need kept: the buffers the batch held
// (Batch.Hold) and a reference to its Record. The zero Lease is empty; a
// Lease is reused, and used by one goroutine at a time.
type Lease struct {
	pool   *BufferPool
	held   [][]byte
	record arrow.RecordBatch
}

// TakeLease moves the batch's held buffers into l, with a new reference to
// the batch's Record, so that they stay valid, whatever the next batches
// do, until l.Release. l must be empty (new, or released).
func (b *Batch) TakeLease(l *Lease) {
	l.pool = b.Pool
	l.held = append(l.held[:0], b.held...)
	clear(b.held)
	b.held = b.held[:0]
	if b.Record != nil {
		b.Record.Retain()
		l.record = b.Record
	}
}

// Release gives the lease's buffers back to their pool and drops its
// reference to the Record; the lease is then empty. Nothing may read the
// batch's outputs afterwards.
func (l *Lease) Release() {
	for _, buf := range l.held {
		l.pool.Put(buf)
	}
	if l.record != nil {
		l.record.Release()
	}
	l.Drop()
}

// Drop empties the lease without giving anything back: its buffers, and
// the Record's columns, are left to the collector and never reused. It is
// for a batch whose outputs may still be read (a failed write: the sink
// may not be done with every record).
func (l *Lease) Drop() {
	clear(l.held)
	l.held = l.held[:0]
	l.record = nil
}
