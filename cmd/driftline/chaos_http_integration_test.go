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

	closed := make(chan time.Duration, slowConns+idleConns)
	watch := func(c net.Conn, start time.Time, limit time.Duration) {
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
		go watch(c, start, slowBound)
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
				closed <- 0
				return
			}
			watch(c, start, slowBound+idleBound)
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
	var slowest time.Duration
	for range slowConns + idleConns {
		d := <-closed
		if d < 0 {
			t.Fatalf("a slow or idle connection was still open after its bound (%s slow, %s idle)", slowBound, slowBound+idleBound)
		}
		slowest = max(slowest, d)
	}
	if worst > probeBound {
		t.Errorf("the probe waited up to %s, over its bound %s", worst, probeBound)
	}
	if outputCount(t, ctx, adm, spec) == 0 {
		t.Error("no outputs while the slow clients held the admin server")
	}
	load.wait(t, 2*time.Minute)
	res := finish(t, ctx, broker, p, spec, load, false)
	t.Logf("%d slow-loris and %d idle connections (limit %d): all closed within %s of opening (bounds: slow %s, idle %s after its request); probe answered within %s (bound %s); lost %d of %d rows",
		slowConns, idleConns, limits.MaxConns, slowest.Round(time.Millisecond), slowBound, idleBound, worst.Round(time.Millisecond), probeBound, res.Lost, load.stats.Rows.Load())
}
