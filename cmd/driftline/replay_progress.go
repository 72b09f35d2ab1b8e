package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// replayProgress reports a replay's progress: done/total input offsets,
// the rate of this process and the ETA. On a terminal it redraws one bar
// in place (\r) every 200ms; otherwise it prints a plain line every
// interval. It is safe for concurrent use.
type replayProgress struct {
	w        io.Writer
	terminal bool
	interval time.Duration
	now      func() time.Time
	mu       sync.Mutex // serializes prints

	total, resumed, done atomic.Int64
	started              atomic.Int64 // unix nanos of begin
	finished             atomic.Bool
}

func newReplayProgress(w io.Writer, interval time.Duration) *replayProgress {
	p := &replayProgress{w: w, interval: interval, now: time.Now}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
			p.interval = 200 * time.Millisecond
		}
	}
	return p
}

func (p *replayProgress) begin(total, resumed int64) {
	p.total.Store(total)
	p.resumed.Store(resumed)
	p.started.Store(p.now().UnixNano())
}

func (p *replayProgress) add(n int64) { p.done.Add(n) }

// run redraws until ctx ends.
func (p *replayProgress) run(ctx context.Context) {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if p.started.Load() != 0 && !p.finished.Load() {
				p.print()
			}
		}
	}
}

func (p *replayProgress) print() {
	p.mu.Lock()
	defer p.mu.Unlock()
	snap := p.snapshot()
	if p.terminal {
		fmt.Fprintf(p.w, "\r\033[K%s", renderReplayBar(snap, 30))
	} else {
		fmt.Fprintln(p.w, renderReplayLine(snap))
	}
}

// finish prints the final state and ends the bar's line.
func (p *replayProgress) finish() {
	if p.finished.Swap(true) {
		return
	}
	p.print()
	if p.terminal {
		fmt.Fprintln(p.w)
	}
}

// progressSnapshot is what one progress report shows.
type progressSnapshot struct {
	Done, Total int64
	Rate        float64 // offsets per second in this process
	ETA         time.Duration
	Elapsed     time.Duration
}

func (p *replayProgress) snapshot() progressSnapshot {
	elapsed := p.now().Sub(time.Unix(0, p.started.Load()))
	mine := p.done.Load()
	s := progressSnapshot{Done: p.resumed.Load() + mine, Total: p.total.Load(), Elapsed: elapsed}
	if sec := elapsed.Seconds(); sec > 0 {
		s.Rate = float64(mine) / sec
	}
	s.ETA = -1
	if s.Rate > 0 {
		s.ETA = time.Duration(float64(s.Total-s.Done) / s.Rate * float64(time.Second))
	}
	return s
}

// renderReplayLine is the non-terminal progress line, e.g.
// "replay 45000/100000 (45.0%) 12000 ev/s eta 4.6s".
func renderReplayLine(s progressSnapshot) string {
	return fmt.Sprintf("replay %d/%d (%s) %.0f ev/s eta %s", s.Done, s.Total, percent(s), s.Rate, formatETA(s.ETA))
}

// renderReplayBar is the terminal bar, width cells wide, e.g.
// "[=============>              ]  45.0%  45000/100000  12000 ev/s  ETA 4.6s".
func renderReplayBar(s progressSnapshot, width int) string {
	fill := width
	if s.Total > 0 {
		fill = int(float64(width) * float64(s.Done) / float64(s.Total))
	}
	fill = min(max(fill, 0), width)
	var b strings.Builder
	b.WriteByte('[')
	b.WriteString(strings.Repeat("=", fill))
	if fill < width {
		b.WriteByte('>')
		b.WriteString(strings.Repeat(" ", width-fill-1))
	}
	b.WriteByte(']')
	fmt.Fprintf(&b, " %6s  %d/%d  %.0f ev/s  ETA %s", percent(s), s.Done, s.Total, s.Rate, formatETA(s.ETA))
	return b.String()
}

func percent(s progressSnapshot) string {
	if s.Total <= 0 {
		return "100.0%"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(s.Done)/float64(s.Total))
}

func formatETA(d time.Duration) string {
	switch {
	case d < 0:
		return "-"
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// syncWriter serializes writes, so that log lines and progress lines from
// several goroutines do not interleave mid-line.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
