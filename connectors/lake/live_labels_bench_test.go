package lake

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// BenchmarkLakeLabels is the live lake's cost to the label plane, per
// label, in batches of 256 labels (the label plane's share of
// `driftline run` with a lake block; compare BenchmarkLabelPlane's
// join/ns/label, the label plane's own work, in the same run):
//
//   - append: Live.AppendLabel for each label and one Hold per batch (the
//     label plane's offset mark): what a label batch's handling adds. No
//     Run: the loop empties the buffer and the holds itself, as Run would
//     without writing, so that only the label plane's part is measured.
//   - live: the same with Run writing concurrently (the default 1m roll)
//     and a Flush after the last batch timed: the labels table's
//     sustained write rate on a busy machine (B/op and allocs/op count
//     Run's too).
func BenchmarkLakeLabels(b *testing.B) {
	const n = 256
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "event-" + strconv.Itoa(i)
	}
	for _, side := range []string{"append", "live"} {
		b.Run(side, func(b *testing.B) {
			l, err := OpenLive(LiveConfig{Events: Config{Root: b.TempDir(), TimeColumn: "ts", MaxAge: time.Minute}})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			if side == "live" {
				go func() { done <- l.Run(ctx) }()
			} else {
				close(done)
			}
			at := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
			var offset int64
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, id := range ids {
					l.AppendLabel(LabelRow{EventID: id, Label: 1, Score: 0.7, ModelVersion: "7", At: at,
						Source: SourceOffset{Topic: "labels", Offset: offset}})
					offset++
				}
				l.Hold(func() {})
				if side == "append" {
					l.labelMu.Lock()
					l.labelBuf = l.labelBuf[:0]
					l.labelMu.Unlock()
					l.holdMu.Lock()
					l.holds = l.holds[:0]
					l.holdMu.Unlock()
				}
			}
			if side == "live" {
				if err := l.Flush(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/label")
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
