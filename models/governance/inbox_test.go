package governance

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/driftline/driftline/detectors/alert"
)

func keyedAlert(key string) alert.Alert {
	return alert.Alert{Detector: "ks", Subject: "x0", State: alert.StateDrift, DedupeKey: key}
}

// TestAlertInboxBounded: the inbox keeps the newest AlertInboxSize alerts,
// dropping the oldest first, and drain empties it.
func TestAlertInboxBounded(t *testing.T) {
	var b AlertInbox
	const extra = 5
	for i := range AlertInboxSize + extra {
		if err := b.Receive(context.Background(), keyedAlert(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	got := b.Drain()
	if len(got) != AlertInboxSize {
		t.Fatalf("drained %d alerts, want %d", len(got), AlertInboxSize)
	}
	for i, a := range got {
		if want := strconv.Itoa(i + extra); a.DedupeKey != want {
			t.Fatalf("alert %d is %q, want %q (oldest dropped first, order kept)", i, a.DedupeKey, want)
		}
	}
	if again := b.Drain(); len(again) != 0 {
		t.Fatalf("second drain returned %d alerts, want none", len(again))
	}
	// Concurrent receivers and a drainer lose nothing below the bound.
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 100 {
				_ = b.Receive(context.Background(), keyedAlert(strconv.Itoa(w*100+i)))
			}
		})
	}
	var seen []alert.Alert
	for range 10 {
		seen = append(seen, b.Drain()...)
	}
	wg.Wait()
	seen = append(seen, b.Drain()...)
	if len(seen) != 400 {
		t.Fatalf("drained %d of 400 concurrent alerts", len(seen))
	}
}
