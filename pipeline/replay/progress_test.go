package replay

import (
	"bytes"
	"testing"
	"time"
)

func TestProgressRendering(t *testing.T) {
	s := ProgressSnapshot{Done: 45_000, Total: 100_000, Rate: 12_000, ETA: 4583 * time.Millisecond}
	if got, want := renderLine(s), "replay 45000/100000 (45.0%) 12000 ev/s eta 4.6s"; got != want {
		t.Errorf("line = %q, want %q", got, want)
	}
	if got, want := renderBar(s, 20), "[=========>          ]  45.0%  45000/100000  12000 ev/s  ETA 4.6s"; got != want {
		t.Errorf("bar = %q, want %q", got, want)
	}
	done := ProgressSnapshot{Done: 10, Total: 10, Rate: 5, ETA: 0}
	if got, want := renderBar(done, 4), "[====] 100.0%  10/10  5 ev/s  ETA 0s"; got != want {
		t.Errorf("bar = %q, want %q", got, want)
	}
	if got := renderLine(ProgressSnapshot{Total: 5, ETA: -1}); got != "replay 0/5 (0.0%) 0 ev/s eta -" {
		t.Errorf("line before any progress = %q", got)
	}

	// The non-terminal writer prints plain lines; a terminal one redraws.
	var buf bytes.Buffer
	p := NewProgress(&buf, false, time.Second)
	clock := time.Unix(1000, 0)
	p.now = func() time.Time { return clock }
	p.Begin(1000, 200)
	clock = clock.Add(2 * time.Second)
	p.Add(400)
	p.print()
	p.terminal = true
	p.print()
	p.Finish()
	want := "replay 600/1000 (60.0%) 200 ev/s eta 2s\n" +
		"\r\033[K[==================>           ]  60.0%  600/1000  200 ev/s  ETA 2s" +
		"\r\033[K[==================>           ]  60.0%  600/1000  200 ev/s  ETA 2s\n"
	if buf.String() != want {
		t.Errorf("progress output = %q\nwant %q", buf.String(), want)
	}
	if IsTerminal(&buf) {
		t.Error("a buffer is taken for a terminal")
	}
}
