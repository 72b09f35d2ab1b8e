// Package redistest starts Redis servers for tests: a real redis-server on a free
// loopback port for integration tests (StartRedis), and in-process miniredis for unit
// tests (StartMiniredis). Both stop at the test's cleanup.
//
// StartRedis never falls back to miniredis: when redis-server is missing it fails the
// test and names scripts/setup-redis.sh.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/testkit/internal/proc"
)

const (
	startTimeout  = 30 * time.Second
	stopTimeout   = 10 * time.Second
	startAttempts = 3
	setupHint     = "run scripts/setup-redis.sh"
)

var (
	errPortTaken = errors.New("port taken")
	errExited    = errors.New("redis-server exited")
)

// Redis is a running Redis server owned by the test that started it.
type Redis struct {
	// Addr is 127.0.0.1:port.
	Addr string
	// LogPath is the real server's log file; empty for miniredis.
	LogPath string
	// Mini is the in-process server when the Redis came from StartMiniredis, else nil.
	// Tests may use it to inspect keys or move time forward (FastForward) for TTLs.
	Mini *miniredis.Miniredis
}

// StartMiniredis starts an in-process miniredis on a loopback port and closes it at
// tb.Cleanup.
func StartMiniredis(tb testing.TB) *Redis {
	tb.Helper()
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		tb.Fatalf("redistest: start miniredis: %v", err)
	}
	tb.Cleanup(m.Close)
	return &Redis{Addr: m.Addr(), Mini: m}
}

// StartRedis starts a real redis-server on a free loopback port with persistence off
// (no RDB snapshots, no AOF) and its working folder in a temporary folder. It returns
// once the server answers PING, and stops it at tb.Cleanup: SIGTERM, then SIGKILL after
// 10 s. If the start fails, the test fails with the tail of the server log.
//
// It needs redis-server on PATH; without it the test fails and names
// scripts/setup-redis.sh.
func StartRedis(tb testing.TB) *Redis {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redistest: redis-server not found: %v; %s", err, setupHint)
	}
	for attempt := 1; ; attempt++ {
		r, err := startRedis(tb, bin)
		if err == nil {
			return r
		}
		if errors.Is(err, errPortTaken) && attempt < startAttempts {
			tb.Logf("redistest: retrying redis-server start: %v", err)
			continue
		}
		tb.Fatalf("redistest: %v", err)
	}
}

// Client returns a go-redis client for r, closed at tb.Cleanup.
func (r *Redis) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	tb.Cleanup(func() { c.Close() })
	return c
}

// startRedis makes one start attempt. The process it leaves running is stopped by the
// cleanup it registers, also when it returns an error.
func startRedis(tb testing.TB, bin string) (*Redis, error) {
	dir, err := os.MkdirTemp("", "driftline-redis-")
	if err != nil {
		return nil, fmt.Errorf("redis folder: %w", err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	logPath := filepath.Join(dir, "redis.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("redis log: %w", err)
	}
	defer logFile.Close()

	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no")
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logFile, logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	tb.Cleanup(func() { proc.Stop(tb, "redistest: redis-server", cmd.Process, exited, stopTimeout) })

	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	if err := waitReady(c, exited); err != nil {
		if errors.Is(err, errExited) {
			err = fmt.Errorf("%w: %w", err, waitErr)
			if log, _ := os.ReadFile(logPath); strings.Contains(string(log), "Address already in use") {
				err = fmt.Errorf("%w: %w", errPortTaken, err)
			}
		}
		return nil, fmt.Errorf("redis-server at %s not ready: %w\nlog %s:\n%s", addr, err, logPath, tail(logPath))
	}
	return &Redis{Addr: addr, LogPath: logPath}, nil
}

// waitReady sends PING until it gets PONG, the process exits, or startTimeout passes.
func waitReady(c *redis.Client, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var last error
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		pong, err := c.Ping(pctx).Result()
		pcancel()
		if err == nil && pong == "PONG" {
			return nil
		}
		last = err
		select {
		case <-exited:
			return errExited
		case <-ctx.Done():
			return fmt.Errorf("no PONG within %s: %w", startTimeout, errors.Join(ctx.Err(), last))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// freePort reserves a loopback port by listening on port 0, then releases it for
// redis-server. Another process can take it in between; StartRedis retries then.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last 40 lines of the file at path.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}
