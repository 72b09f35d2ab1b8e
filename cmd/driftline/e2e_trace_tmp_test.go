//go:build integration

package main

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/driftline/driftline/pipeline"
)

type stall struct {
	at   time.Time
	late time.Duration
}

var (
	stallMu sync.Mutex
	stalls  []stall
)

type rqWin struct {
	at          time.Time
	cpu, rqwait time.Duration
}

var rqWins []rqWin

func schedTotals() (cpu, wait time.Duration) {
	ents, _ := os.ReadDir("/proc/self/task")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/schedstat")
		if err != nil {
			continue
		}
		var c, w int64
		fmt.Sscan(string(b), &c, &w)
		cpu += time.Duration(c)
		wait += time.Duration(w)
	}
	return
}

func init() {
	go func() {
		pc, pw := schedTotals()
		for {
			time.Sleep(50 * time.Millisecond)
			c, w := schedTotals()
			if pipeline.TraceOn.Load() {
				stallMu.Lock()
				rqWins = append(rqWins, rqWin{time.Now(), c - pc, w - pw})
				stallMu.Unlock()
			}
			pc, pw = c, w
		}
	}()
	go func() {
		for {
			t := time.Now()
			time.Sleep(time.Millisecond)
			if late := time.Since(t) - time.Millisecond; late > 4*time.Millisecond && pipeline.TraceOn.Load() {
				stallMu.Lock()
				stalls = append(stalls, stall{t, late})
				stallMu.Unlock()
			}
		}
	}()
}

func rqAround(from, to time.Time) (cpu, wait time.Duration) {
	for _, r := range rqWins {
		if r.at.After(from) && r.at.Add(-50*time.Millisecond).Before(to) {
			cpu += r.cpu
			wait += r.rqwait
		}
	}
	return
}

func maxStall(from, to time.Time) time.Duration {
	var m time.Duration
	for _, s := range stalls {
		if s.at.Before(to) && s.at.Add(s.late).After(from) {
			m = max(m, s.late)
		}
	}
	return m
}

// TEMPORARY: per-batch legs of the latency run.
func logTrace(b *testing.B, side string) {
	trs := pipeline.TraceTake()
	var ok []*pipeline.BatchTrace
	for _, t := range trs {
		if !t.Finished.IsZero() && !t.Polled.IsZero() {
			ok = append(ok, t)
		}
	}
	if len(ok) == 0 {
		return
	}
	legs := []struct {
		name string
		f    func(t *pipeline.BatchTrace) time.Duration
	}{
		{"append0->polled", func(t *pipeline.BatchTrace) time.Duration { return t.Polled.Sub(t.FirstAppend) }},
		{"polled->start", func(t *pipeline.BatchTrace) time.Duration { return t.Start.Sub(t.Polled) }},
		{"stages", func(t *pipeline.BatchTrace) time.Duration { return t.StagesDone.Sub(t.Entered) }},
		{"slotwait", func(t *pipeline.BatchTrace) time.Duration { return t.Slot.Sub(t.StagesDone) }},
		{"slot->written", func(t *pipeline.BatchTrace) time.Duration { return t.Written.Sub(t.Slot) }},
		{"written->acked", func(t *pipeline.BatchTrace) time.Duration { return t.Acked.Sub(t.Written) }},
		{"acked->finished", func(t *pipeline.BatchTrace) time.Duration { return t.Finished.Sub(t.Acked) }},
		{"appendN->acked", func(t *pipeline.BatchTrace) time.Duration { return t.Acked.Sub(t.LastAppend) }},
		{"append0->acked", func(t *pipeline.BatchTrace) time.Duration { return t.Acked.Sub(t.FirstAppend) }},
		{"append0..N", func(t *pipeline.BatchTrace) time.Duration { return t.LastAppend.Sub(t.FirstAppend) }},
	}
	var t0 time.Time
	for _, t := range ok {
		if t0.IsZero() || t.FirstAppend.Before(t0) {
			t0 = t.FirstAppend
		}
	}
	var sb strings.Builder
	stallMu.Lock()
	defer func() { stalls = nil; rqWins = nil; stallMu.Unlock() }()
	var tc, tw time.Duration
	for _, r := range rqWins {
		tc += r.cpu
		tw += r.rqwait
	}
	fmt.Fprintf(&sb, "process over %d windows of 50ms: cpu %s, runqueue wait %s (all threads)\n", len(rqWins), tc, tw)
	var ls []time.Duration
	for _, s := range stalls {
		ls = append(ls, s.late)
	}
	slices.Sort(ls)
	if len(ls) > 0 {
		fmt.Fprintf(&sb, "sleeper stalls >4ms: %d, p50 %s max %s\n", len(ls), ls[len(ls)/2], ls[len(ls)-1])
	}
	ns := make([]float64, 0, len(ok))
	for _, t := range ok {
		ns = append(ns, float64(t.N))
	}
	slices.Sort(ns)
	fmt.Fprintf(&sb, "%s: %d batches, size p50 %.0f p99 %.0f\n", side, len(ok), ns[len(ns)/2], ns[len(ns)*99/100])
	for _, l := range legs {
		v := make([]time.Duration, len(ok))
		for i, t := range ok {
			v[i] = l.f(t)
		}
		slices.Sort(v)
		q := func(p float64) float64 { return float64(v[int(p*float64(len(v)-1))]) / 1e6 }
		fmt.Fprintf(&sb, "  %-16s p50 %7.1f p90 %7.1f p99 %7.1f max %7.1f ms\n", l.name, q(.5), q(.9), q(.99), q(1))
	}
	slices.SortFunc(ok, func(a, c *pipeline.BatchTrace) int {
		return cmp.Compare(c.Acked.Sub(c.FirstAppend), a.Acked.Sub(a.FirstAppend))
	})
	fmt.Fprintf(&sb, "  worst batches (ms): p n | polled-a0 start-polled stages slot write->ack ack->fin | a0 wall\n")
	for _, t := range ok[:min(15, len(ok))] {
		ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
		fmt.Fprintf(&sb, "   %d %4d | %6.1f %6.1f %6.1f %6.1f %6.1f %6.1f | %s +%s stall %s cpu/rqwait %s/%s\n", t.Partition, t.N,
			ms(t.Polled.Sub(t.FirstAppend)), ms(t.Start.Sub(t.Polled)), ms(t.StagesDone.Sub(t.Entered)), ms(t.Slot.Sub(t.StagesDone)),
			ms(t.Acked.Sub(t.Written)), ms(t.Finished.Sub(t.Acked)), t.FirstAppend.Format("15:04:05.000"), t.FirstAppend.Sub(t0).Round(time.Millisecond), maxStall(t.FirstAppend, t.Acked).Round(100*time.Microsecond), cpuOf(t), waitOf(t))
	}
	b.Log(sb.String())
}

func cpuOf(t *pipeline.BatchTrace) time.Duration {
	c, _ := rqAround(t.FirstAppend, t.Acked)
	return c.Round(time.Millisecond)
}

func waitOf(t *pipeline.BatchTrace) time.Duration {
	_, w := rqAround(t.FirstAppend, t.Acked)
	return w.Round(time.Millisecond)
}
