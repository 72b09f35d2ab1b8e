package lake

import (
	"context"
	"testing"
	"time"
)

// BenchmarkLakeHotPath is the live lake's cost on a partition loop's
// critical path, per 4096-row batch of the 20-column schema (the lake's
// other benchmarks' batch):
//
//   - off: no lake; the loop does nothing for it (the baseline, 0).
//   - append: Live.Append alone, what `run` adds to the loop with a lake
//     block: it retains the record and copies the rows' indices, scores,
//     offsets and record times into a pooled item and queues it. A
//     goroutine takes the items off the queue and recycles them without
//     encoding, so that only the loop's part is measured.
//   - live: Live.Append with Run encoding on its own goroutine: on a busy
//     machine the encode is slower than the append, the queue fills and
//     Append waits (backpressure), so this is the lake's sustained write
//     rate, and B/op and allocs/op include Run's (they count the process).
//     The final Flush (what is still queued, then the commit) is timed.
//   - inline: Writer.WriteBatch on the loop itself, what the encode would
//     cost on the critical path (with its final Flush timed too).
func BenchmarkLakeHotPath(b *testing.B) {
	batch := benchBatch(0)
	defer batch.Record.Release()
	rows := len(batch.Scores)
	nextOffsets := func() {
		for i := range batch.Messages {
			batch.Messages[i].Offset += int64(len(batch.Messages))
		}
	}
	b.Run("off", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			nextOffsets()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
	})
	b.Run("append", func(b *testing.B) {
		l, err := OpenLive(LiveConfig{Events: Config{Root: b.TempDir(), TimeColumn: "ts"}})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		stop := make(chan struct{})
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			for {
				select {
				case it := <-l.queue:
					l.recycle(it.ev)
				case <-stop:
					return
				}
			}
		}()
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			nextOffsets()
			if err := l.Append(ctx, batch, "v1", nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
		b.StopTimer()
		close(stop)
		<-drained
	})
	b.Run("live", func(b *testing.B) {
		l, err := OpenLive(LiveConfig{Events: Config{Root: b.TempDir(), TimeColumn: "ts", MaxAge: time.Minute}})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- l.Run(ctx) }()
		b.ReportAllocs()
		for b.Loop() {
			nextOffsets()
			if err := l.Append(ctx, batch, "v1", nil); err != nil {
				b.Fatal(err)
			}
		}
		// What is still queued is written and committed within the time.
		if err := l.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("inline", func(b *testing.B) {
		w, err := New(Config{Root: b.TempDir(), TimeColumn: "ts", MaxAge: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			nextOffsets()
			if err := w.WriteBatch(batch, "v1"); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
		b.StopTimer()
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	})
}
