package feed

import (
	"testing"
	"time"
)

func TestRampPacing(t *testing.T) {
	c := Config{Rate: 1000, RampRows: 100, RampRate: 50}
	for _, tc := range []struct {
		sent int64
		want time.Duration
	}{{0, 0}, {50, time.Second}, {100, 2 * time.Second}, {1100, 3 * time.Second}} {
		if got := c.dueAfter(tc.sent); got != tc.want {
			t.Errorf("row %d due after %s, want %s", tc.sent, got, tc.want)
		}
	}
	c.RampRows = 0
	if got := c.dueAfter(1000); got != time.Second {
		t.Errorf("without a ramp row 1000 due after %s, want 1s", got)
	}
}
