package lake

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"
)

// BenchmarkReadLabels reads a live lake's labels table of 100,000 labels
// (ids of 25 bytes, as a backtest over a live lake and a lake retrain read
// it) into ReadLabels' map, and reports labels/s.
func BenchmarkReadLabels(b *testing.B) {
	const n = 100_000
	root := b.TempDir()
	l, err := OpenLive(LiveConfig{Events: Config{Root: root, TimeColumn: "ts"}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t0 := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	for i := range n {
		l.AppendLabel(LabelRow{EventID: fmt.Sprintf("%016x-%08d", uint64(i)*0x9e3779b97f4a7c15, i), Label: float32(i % 2),
			ModelVersion: "7", At: t0.Add(time.Duration(i) * time.Millisecond)})
	}
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpuStart := processCPU(b)
	for b.Loop() {
		labels, err := ReadLabels(context.Background(), root)
		if err != nil {
			b.Fatal(err)
		}
		if len(labels) != n {
			b.Fatalf("read %d labels, want %d", len(labels), n)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "labels/s")
	// CPU time per label, all goroutines (the GC's included): steadier
	// than labels/s on a machine others load.
	b.ReportMetric(float64((processCPU(b)-cpuStart).Nanoseconds())/float64(n*b.N), "cpu-ns/label")
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
