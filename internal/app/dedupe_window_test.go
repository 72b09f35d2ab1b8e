package app

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/pipeline"
)

// TestWarnShortDedupeWindow: an exactly-once pipeline whose dedupe window
// is shorter than twice a restart (session timeout plus the transaction
// timeout, at least a minute) is warned about, naming the field and the
// advice; a longer window, or dedupe off, is not.
func TestWarnShortDedupeWindow(t *testing.T) {
	off := false
	for _, tc := range []struct {
		name    string
		ttl     time.Duration
		enabled *bool
		warn    bool
	}{
		{"the demo's 5s", 5 * time.Second, nil, true},
		{"59s", 59 * time.Second, nil, true},
		{"one hour", time.Hour, nil, false},
		{"dedupe off", 5 * time.Second, &off, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := &pipeline.Spec{}
			spec.Kafka.SessionTimeout = pipeline.Duration(10 * time.Second)
			spec.Stages.Dedupe.TTL = pipeline.Duration(tc.ttl)
			spec.Stages.Dedupe.Enabled = tc.enabled
			var buf bytes.Buffer
			warnShortDedupeWindow(slog.New(slog.NewTextHandler(&buf, nil)), spec)
			got := buf.String()
			if warned := strings.Contains(got, "stages.dedupe.ttl"); warned != tc.warn {
				t.Fatalf("warned %v, want %v: %q", warned, tc.warn, got)
			}
			// 2 × (10s session + 15s transaction timeout) = 50s, under a minute.
			if tc.warn && !strings.Contains(got, "advised_at_least=1m0s") {
				t.Fatalf("warning %q does not advise 1m", got)
			}
		})
	}
}
