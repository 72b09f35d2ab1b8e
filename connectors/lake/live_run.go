package lake

import (
	"cmp"
	"context"
	"slices"
	"strings"
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
			if err = l.writeBufferedLabels(); err == nil {
				l.release()
			}
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
// of one model version and source partition, leaving out the rows whose
// source the table holds already (see LabelRow.Source). The label plane's
// partitions and the data plane's append concurrently, so rows are first
// ordered by source partition, stably: each partition's rows stay in
// their order, and a roll in the middle of the writes commits a prefix
// of each.
func (l *Live) writeLabels(rows []LabelRow) error {
	slices.SortStableFunc(rows, func(a, b LabelRow) int {
		return cmp.Or(strings.Compare(a.Source.Topic, b.Source.Topic), cmp.Compare(a.Source.Partition, b.Source.Partition))
	})
	rows = l.unwritten(rows)
	for i := 0; i < len(rows); {
		j := i + 1
		for j < len(rows) && rows[j].ModelVersion == rows[i].ModelVersion &&
			rows[j].Source.Topic == rows[i].Source.Topic && rows[j].Source.Partition == rows[i].Source.Partition {
			j++
		}
		run := rows[i:j]
		n := len(run)
		r := Rows{Sel: make([]int, n), Scores: make([]float32, n), Labels: make([]float32, n), ModelVersion: run[0].ModelVersion,
			Topic: run[0].Source.Topic, Partition: run[0].Source.Partition, Offsets: make([]int64, n), RecordTimes: make([]int64, n)}
		l.idB.Reserve(n)
		for k, lr := range run {
			l.idB.Append(lr.EventID)
			r.Sel[k], r.Scores[k], r.Labels[k], r.Offsets[k] = k, lr.Score, lr.Label, -1
			if lr.Source.Topic != "" {
				r.Offsets[k] = lr.Source.Offset
			}
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

// unwritten filters rows, in place, to those past their source
// partition's last label row, counting the others in dropped.
func (l *Live) unwritten(rows []LabelRow) []LabelRow {
	out := rows[:0]
	for _, r := range rows {
		if src := r.Source; src.Topic != "" {
			key := SourceKey{src.Topic, src.Partition}
			if last, ok := l.labelLast[key]; ok && src.Offset <= last {
				l.dropped.Add(1)
				continue
			}
			l.labelLast[key] = src.Offset
		}
		out = append(out, r)
	}
	return out
}

// release moves durableItems and durableLabels up to what the two tables
// made durable and runs the held callbacks they cover, in order.
func (l *Live) release() {
	items, ok := durableUpTo(&l.pending, l.events.Durable())
	labels, lok := durableUpTo(&l.labelPending, l.labels.Durable())
	if !ok && !lok {
		return
	}
	l.holdMu.Lock()
	if ok {
		l.durableItems = items
	}
	if lok {
		l.durableLabels = labels
	}
	n := 0
	for n < len(l.holds) && l.covers(l.holds[n]) {
		n++
	}
	run := append([]heldMark(nil), l.holds[:n]...)
	l.holds = append(l.holds[:0], l.holds[n:]...)
	l.holdMu.Unlock()
	for _, h := range run {
		h.release()
	}
}

// durableUpTo drops the entries of pending whose writes are durable and
// returns the last one's count; ok is false when there is none.
func durableUpTo(pending *[]itemWrites, durable int64) (count int64, ok bool) {
	p := *pending
	k := 0
	for k < len(p) && p[k].writes <= durable {
		k++
	}
	if k == 0 {
		return 0, false
	}
	count = p[k-1].item
	*pending = append(p[:0], p[k:]...)
	return count, true
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
	if len(rows) >= maxBufferedLabels {
		close(l.labelDrained)
		l.labelDrained = make(chan struct{})
	}
	l.labelMu.Unlock()
	if len(rows) == 0 {
		// The empty buffer is the spare now: keeping the old spare would
		// hand its array to AppendLabel and to the next write at once.
		l.labelSpare = rows[:0]
		return nil
	}
	l.labelsTaken += int64(len(rows))
	err := l.writeLabels(rows)
	clear(rows) // drop the strings
	l.labelSpare = rows[:0]
	if err != nil {
		return err
	}
	l.labelPending = append(l.labelPending, itemWrites{l.labelsTaken, l.labels.Writes()})
	return nil
}
