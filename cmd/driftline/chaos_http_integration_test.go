//go:build integration

package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/driftline/driftline/internal/app"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
)

// TestChaosSlowHTTPClients opens more slow-loris connections (headers
// never finished) than the admin server takes at once, and idle kept-alive
// ones, against driftline run under load. The server must close each slow
// one within its header timeout (counted from its accept), each idle one
// within its idle timeout, and keep answering a well-behaved client (a
// probe) throughout; the pipeline must not lose an event.
func TestChaosSlowHTTPClients(t *testing.T) {
	const events, rate = 30_000, 1500
	limits := app.DefaultAdminLimits
	slowConns, idleConns := limits.MaxConns+72, 20
	// A slow connection past the limit waits up to one header timeout to
	// be accepted, then gets its own.
	slowBound := 2*limits.ReadHeaderTimeout + 5*time.Second
	idleBound := limits.IdleTimeout + 5*time.Second
	probeBound := limits.ReadHeaderTimeout + 3*time.Second

	broker := kafkatest.SharedKafka(t)
	rds := redistest.StartRedis(t)
	spec, specPath := chaosSpec(t, broker, rds, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	adm := kadm.NewClient(broker.Client(t))
	p := startChaosRun(t, specPath)
	waitUntil(t, p, time.Minute, "ready at start", p.ready)
	load := startChaosLoad(t, ctx, broker, spec, events, rate)

	slowClosed := make(chan time.Duration, slowConns)
	idleClosed := make(chan time.Duration, idleConns)
	watch := func(closed chan<- time.Duration, c net.Conn, start time.Time, limit time.Duration) {
		defer c.Close()
		_ = c.SetReadDeadline(start.Add(limit))
		buf := make([]byte, 1024)
		for {
			if _, err := c.Read(buf); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					closed <- -1 // still open at the bound
				} else {
					closed <- time.Since(start)
				}
				return
			}
		}
	}
	start := time.Now()
	for range slowConns {
		c, err := net.Dial("tcp", p.admin)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
			t.Fatal(err)
		}
		go watch(slowClosed, c, start, slowBound)
	}
	for range idleConns {
		c, err := net.Dial("tcp", p.admin)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			// One request, then silence on a kept-alive connection (it
			// is served once the server accepts it).
			if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				idleClosed <- 0
				return
			}
			watch(idleClosed, c, start, slowBound+idleBound)
		}()
	}

	// A probe: answered throughout, within its bound.
	probe := http.Client{Timeout: 2 * probeBound, Transport: &http.Transport{DisableKeepAlives: true}}
	var worst time.Duration
	for time.Since(start) < slowBound {
		t0 := time.Now()
		resp, err := probe.Get("http://" + p.admin + "/healthz")
		if err != nil {
			t.Fatalf("the probe failed while slow clients held the server: %v", err)
		}
		resp.Body.Close()
		worst = max(worst, time.Since(t0))
		p.mustBeAlive(t, "the slow clients")
		time.Sleep(200 * time.Millisecond)
	}
	slowest := func(closed <-chan time.Duration, n int, what string, bound time.Duration) time.Duration {
		var worst time.Duration
		for range n {
			d := <-closed
			if d < 0 {
				t.Fatalf("a %s connection was still open %s after it was opened", what, bound)
			}
			worst = max(worst, d)
		}
		return worst
	}
	slow := slowest(slowClosed, slowConns, "slow-loris", slowBound)
	idle := slowest(idleClosed, idleConns, "idle", slowBound+idleBound)
	if worst > probeBound {
		t.Errorf("the probe waited up to %s, over its bound %s", worst, probeBound)
	}
	if outputCount(t, ctx, adm, spec) == 0 {
		t.Error("no outputs while the slow clients held the admin server")
	}
	load.wait(t, 2*time.Minute)
	res := finish(t, ctx, broker, p, spec, load, false)
	t.Logf("%d slow-loris connections (limit %d at once) all closed within %s of opening (bound %s); %d idle kept-alive ones within %s (bound %s: served after the slow ones, then idle %s)",
		slowConns, limits.MaxConns, slow.Round(time.Millisecond), slowBound, idleConns, idle.Round(time.Millisecond), slowBound+idleBound, limits.IdleTimeout)
	t.Logf("figures: a probe answered within %s throughout (bound %s); lost %d, duplicated %d of %d rows",
		worst.Round(time.Millisecond), probeBound, res.Lost, res.DuplicatePredictions, load.stats.Rows.Load())
}
