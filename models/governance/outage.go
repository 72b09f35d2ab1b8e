package governance

import (
	"log/slog"
	"time"
)

// DefaultOutageLogEvery is OutageLog.Every's default.
const DefaultOutageLogEvery = 30 * time.Second

// OutageLog logs a loop's failures without flooding the log while a
// dependency is down: the first failure of a run of failures at once
// (Warn), then at most one line per Every with the count so far, and the
// success that ends the run (Info, with its length). It is used by one
// goroutine.
type OutageLog struct {
	// Log and Msg say where and what; Every defaults to
	// DefaultOutageLogEvery.
	Log   *slog.Logger
	Msg   string
	Every time.Duration

	since, last time.Time
	failures    int
}

// Failed notes one failure; args are extra log attributes.
func (o *OutageLog) Failed(err error, args ...any) {
	now := time.Now()
	every := o.Every
	if every <= 0 {
		every = DefaultOutageLogEvery
	}
	o.failures++
	if o.failures == 1 {
		o.since, o.last = now, now
		o.Log.Warn(o.Msg, append(args, "err", err)...)
		return
	}
	if now.Sub(o.last) >= every {
		o.last = now
		o.Log.Warn(o.Msg+" (still failing)", append(args, "failures", o.failures, "for", now.Sub(o.since).Round(time.Second), "err", err)...)
	}
}

// OK notes a success; it logs the end of a run of failures.
func (o *OutageLog) OK(args ...any) {
	if o.failures == 0 {
		return
	}
	o.Log.Info(o.Msg+": works again", append(args, "failures", o.failures, "after", time.Since(o.since).Round(time.Millisecond))...)
	o.failures = 0
}
