package governance

import (
	"context"
	"sync"

	"github.com/driftline/driftline/detectors/alert"
)

// AlertInboxSize bounds the alerts an AlertInbox holds.
const AlertInboxSize = 1024

// AlertInbox holds the alerts the governor has not looked at yet, received
// from the alerts topic (so a governor sees every instance's alerts). It
// keeps at most AlertInboxSize; older ones are dropped first. It is safe
// for concurrent use.
type AlertInbox struct {
	mu  sync.Mutex
	buf []alert.Alert
}

// Receive adds a; it fits the alert router's handler and never fails.
func (b *AlertInbox) Receive(_ context.Context, a alert.Alert) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf) >= AlertInboxSize {
		b.buf = b.buf[1:]
	}
	b.buf = append(b.buf, a)
	return nil
}

// Drain returns the alerts received since the previous drain.
func (b *AlertInbox) Drain() []alert.Alert {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.buf
	b.buf = nil
	return out
}
