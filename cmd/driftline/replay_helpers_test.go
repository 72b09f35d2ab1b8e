package main

import (
	"testing"

	"github.com/driftline/driftline/internal/app"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/replaytest"
)

// loadReplayEnv is the demo spec on the broker at addr and rds, with a
// trained snapshot.
func loadReplayEnv(t testing.TB, addr string, rds *redistest.Redis) *replaytest.Env {
	t.Helper()
	return replaytest.LoadEnv(t, app.DemoSpec, app.LoadSpec, addr, rds)
}

// replaySpecText is the demo spec pointed at addr and redisAddr.
func replaySpecText(t testing.TB, addr, redisAddr string) string {
	t.Helper()
	return replaytest.SpecText(t, app.DemoSpec, addr, redisAddr)
}
