package kafka

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// topUpWorker is a partition worker with only what topUp reads.
func topUpWorker(batchSize int, linger time.Duration) *partitionWorker {
	return &partitionWorker{
		c:     &Client{cfg: Config{BatchSize: batchSize, Linger: linger}},
		queue: make(chan chunk, 8),
		quit:  make(chan struct{}),
	}
}

func records(from, n int) []*kgo.Record {
	out := make([]*kgo.Record, n)
	for i := range out {
		out[i] = &kgo.Record{Offset: int64(from + i)}
	}
	return out
}

// A batch whose first records were polled longer than Linger ago takes
// what is queued and goes at once: its records lingered while they waited.
func TestTopUpDoesNotLingerAgainForRecordsThatWaited(t *testing.T) {
	w := topUpWorker(100, time.Hour)
	now := time.Now()
	w.queue <- chunk{records: records(3, 2), highWatermark: 10, polled: now}
	start := time.Now()
	got, hw, last := w.topUp(records(0, 3), 5, now.Add(-2*time.Hour), now.Add(-2*time.Hour))
	if d := time.Since(start); d > time.Minute {
		t.Fatalf("topUp waited %s for records polled two hours ago (linger 1h)", d)
	}
	if len(got) != 5 || got[4].Offset != 4 {
		t.Fatalf("topped up to %d records, want the 3 pending and the 2 queued", len(got))
	}
	if hw != 10 || !last.Equal(now) {
		t.Fatalf("high watermark %d and last poll %v, want the queued chunk's 10 and %v", hw, last, now)
	}
}

// A fresh short batch waits for more until Linger has passed since its
// first records were polled, and stops as soon as it is full.
func TestTopUpWaitsOutTheRestOfLinger(t *testing.T) {
	const linger = 30 * time.Millisecond
	w := topUpWorker(100, linger)
	since := time.Now()
	got, _, _ := w.topUp(records(0, 1), 0, since, since)
	if d := time.Since(since); d < linger {
		t.Fatalf("a short batch went after %s, before its linger of %s", d, linger)
	}
	if len(got) != 1 {
		t.Fatalf("got %d records, want the 1 pending", len(got))
	}

	w = topUpWorker(4, time.Hour)
	go func() { w.queue <- chunk{records: records(1, 5), polled: time.Now()} }()
	got, _, _ = w.topUp(records(0, 1), 0, time.Now(), time.Now())
	if len(got) != 6 {
		t.Fatalf("got %d records, want the pending one and the 5 that filled the batch (linger 1h)", len(got))
	}
}
