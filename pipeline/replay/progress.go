package replay

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// terminalInterval is how often a bar on a terminal is redrawn.
const terminalInterval = 200 * time.Millisecond

// Progress reports a replay's progress: done/total input offsets, the rate
// of this process and the ETA. On a terminal it redraws one bar in place
// (\r) every 200ms; otherwise it prints a plain line every interval. It is
// safe for concurrent use.
type Progress struct {
	w        io.Writer
	terminal bool
	interval time.Duration
	now      func() time.Time
	mu       sync.Mutex // serializes prints

	total, resumed, done atomic.Int64
	started              atomic.Int64 // unix nanos of Begin
	finished             atomic.Bool
}

// NewProgress reports to w: as a bar when terminal is set (see
// IsTerminal), else as a line every interval.
func NewProgress(w io.Writer, terminal bool, interval time.Duration) *Progress {
	p := &Progress{w: w, terminal: terminal, interval: interval, now: time.Now}
	if terminal {
		p.interval = terminalInterval
	}
	return p
}

// IsTerminal reports whether w is a terminal (golang.org/x/term): a
// progress bar then redraws in place.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Begin starts the clock: total offsets, of which resumed were done by
// earlier processes.
func (p *Progress) Begin(total, resumed int64) {
	p.total.Store(total)
	p.resumed.Store(resumed)
	p.started.Store(p.now().UnixNano())
}

// Add counts n offsets done by this process.
func (p *Progress) Add(n int64) { p.done.Add(n) }

// Run redraws until ctx ends.
func (p *Progress) Run(ctx context.Context) {
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

func (p *Progress) print() {
	p.mu.Lock()
	defer p.mu.Unlock()
	snap := p.Snapshot()
	if p.terminal {
		fmt.Fprintf(p.w, "\r\033[K%s", renderBar(snap, 30))
	} else {
		fmt.Fprintln(p.w, renderLine(snap))
	}
}

// Finish prints the final state and ends the bar's line; later calls do
// nothing.
func (p *Progress) Finish() {
	if p.finished.Swap(true) {
		return
	}
	p.print()
	if p.terminal {
		fmt.Fprintln(p.w)
	}
}

// ProgressSnapshot is what one progress report shows.
type ProgressSnapshot struct {
	Done, Total int64
	Rate        float64 // offsets per second in this process
	ETA         time.Duration
	Elapsed     time.Duration
}

// Snapshot is the progress now.
func (p *Progress) Snapshot() ProgressSnapshot {
	elapsed := p.now().Sub(time.Unix(0, p.started.Load()))
	mine := p.done.Load()
	s := ProgressSnapshot{Done: p.resumed.Load() + mine, Total: p.total.Load(), Elapsed: elapsed}
	if sec := elapsed.Seconds(); sec > 0 {
		s.Rate = float64(mine) / sec
	}
	s.ETA = -1
	if s.Rate > 0 {
		s.ETA = time.Duration(float64(s.Total-s.Done) / s.Rate * float64(time.Second))
	}
	return s
}

// renderLine is the non-terminal progress line, e.g.
// "replay 45000/100000 (45.0%) 12000 ev/s eta 4.6s".
func renderLine(s ProgressSnapshot) string {
	return fmt.Sprintf("replay %d/%d (%s) %.0f ev/s eta %s", s.Done, s.Total, percent(s), s.Rate, formatETA(s.ETA))
}

// renderBar is the terminal bar, width cells wide, e.g.
// "[=============>              ]  45.0%  45000/100000  12000 ev/s  ETA 4.6s".
func renderBar(s ProgressSnapshot, width int) string {
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

func percent(s ProgressSnapshot) string {
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
