package lake

import (
	"context"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// The live lake's writer goroutine (Live.Run): it writes the queued
// batches and the buffered labels, rolls files by age, applies retention
// and runs the held callbacks the commits cover.

// Run writes what is queued, rolls files by age and applies retention,
// until ctx ends; then it writes what is queued and commits (Flush). It
// returns the first write error (the lake is then failed: Append and
// Flush return it, and held offsets stay uncommitted).
func (l *Live) Run(ctx context.Context) error {
	defer close(l.done)
	every := min(max(l.events.cfg.MaxAge/4, 10*time.Millisecond), time.Minute)
	roll := time.NewTicker(every)
	defer roll.Stop()
	retain := time.NewTicker(l.cfg.RetentionEvery)
	defer retain.Stop()
	for {
		var err error
		select {
		case it := <-l.queue:
			err = l.handle(it)
		case <-l.labelWake:
			err = l.writeBufferedLabels()
		case <-roll.C:
			err = l.rollAged()
		case <-retain.C:
			err = l.expire()
		case <-ctx.Done():
			for {
				select {
				case it := <-l.queue:
					if err := l.handle(it); err != nil {
						l.fail(err)
						return err
					}
				default:
					err := l.flushAll()
					if err != nil {
						l.fail(err)
					}
					return err
				}
			}
		}
		if err != nil {
			l.fail(err)
			return err
		}
	}
}

func (l *Live) handle(it liveItem) error {
	switch {
	case it.flush != nil:
		err := l.flushAll()
		it.flush <- err
		return err
	}
	err := l.writeEvents(it.ev)
	l.recycle(it.ev)
	if err != nil {
		return err
	}
	l.processed++
	l.pending = append(l.pending, itemWrites{l.processed, l.events.Writes()})
	l.release()
	return nil
}

// writeEvents writes ev's rows past the partition's last written offset.
func (l *Live) writeEvents(ev *eventRows) error {
	r := &ev.rows
	if len(r.Sel) == 0 {
		return nil
	}
	key := SourceKey{r.Topic, r.Partition}
	if last, ok := l.last[key]; ok && r.Offsets[0] <= last {
		k := 0
		for k < len(r.Offsets) && r.Offsets[k] <= last {
			k++
		}
		l.dropped.Add(int64(k))
		r.Sel, r.Scores, r.Offsets, r.RecordTimes = r.Sel[k:], r.Scores[k:], r.Offsets[k:], r.RecordTimes[k:]
		if r.Versions != nil {
			r.Versions = r.Versions[k:]
		}
		if len(r.Sel) == 0 {
			return nil
		}
	}
	if err := l.events.WriteRows(ev.rec, *r); err != nil {
		return err
	}
	l.last[key] = r.Offsets[len(r.Offsets)-1]
	return nil
}

func (l *Live) recycle(ev *eventRows) {
	if ev.rec != nil {
		ev.rec.Release()
		ev.rec = nil
	}
	ev.rows = Rows{}
	clear(ev.versions) // drop the strings
	l.pool.Put(ev)
}

// writeLabels writes rows to the labels table, one write per run of rows
// of one model version.
func (l *Live) writeLabels(rows []LabelRow) error {
	for i := 0; i < len(rows); {
		j := i + 1
		for j < len(rows) && rows[j].ModelVersion == rows[i].ModelVersion {
			j++
		}
		run := rows[i:j]
		n := len(run)
		r := Rows{Sel: make([]int, n), Scores: make([]float32, n), Labels: make([]float32, n), ModelVersion: run[0].ModelVersion,
			Offsets: make([]int64, n), RecordTimes: make([]int64, n)}
		l.idB.Reserve(n)
		for k, lr := range run {
			l.idB.Append(lr.EventID)
			r.Sel[k], r.Scores[k], r.Labels[k], r.Offsets[k] = k, lr.Score, lr.Label, -1
			r.RecordTimes[k] = lr.At.UnixMicro()
		}
		ids := l.idB.NewArray()
		rec := array.NewRecordBatch(l.labelSch, []arrow.Array{ids}, int64(n))
		ids.Release()
		err := l.labels.WriteRows(rec, r)
		rec.Release()
		if err != nil {
			return err
		}
		i = j
	}
	return nil
}

// release moves durableItems up to what the events table made durable and
// runs the held callbacks it covers.
func (l *Live) release() {
	durable := l.events.Durable()
	k := 0
	for k < len(l.pending) && l.pending[k].writes <= durable {
		k++
	}
	if k == 0 {
		return
	}
	items := l.pending[k-1].item
	l.pending = append(l.pending[:0], l.pending[k:]...)
	l.holdMu.Lock()
	l.durableItems = items
	n := 0
	for n < len(l.holds) && l.holds[n].target <= items {
		n++
	}
	run := append([]heldMark(nil), l.holds[:n]...)
	l.holds = append(l.holds[:0], l.holds[n:]...)
	l.holdMu.Unlock()
	for _, h := range run {
		h.release()
	}
}

func (l *Live) flushAll() error {
	if err := l.writeBufferedLabels(); err != nil {
		return err
	}
	if err := l.events.Flush(); err != nil {
		return err
	}
	if err := l.labels.Flush(); err != nil {
		return err
	}
	l.release()
	return nil
}

func (l *Live) rollAged() error {
	if err := l.writeBufferedLabels(); err != nil {
		return err
	}
	if err := l.events.rollAged(); err != nil {
		return err
	}
	if err := l.labels.rollAged(); err != nil {
		return err
	}
	l.release()
	return nil
}

func (l *Live) expire() error {
	if l.cfg.RetentionMaxAge == 0 && l.cfg.RetentionMaxBytes == 0 {
		return nil
	}
	for _, w := range []*Writer{l.events, l.labels} {
		if _, err := w.Expire(l.cfg.RetentionMaxAge, l.cfg.RetentionMaxBytes); err != nil {
			return err
		}
	}
	return nil
}

// writeBufferedLabels writes the labels buffered so far.
func (l *Live) writeBufferedLabels() error {
	l.labelMu.Lock()
	rows := l.labelBuf
	l.labelBuf = l.labelSpare[:0]
	l.labelMu.Unlock()
	err := l.writeLabels(rows)
	l.labelSpare = rows[:0]
	return err
}
