// Package redistest starts Redis servers for tests: a real redis-server on a free
// loopback port for integration tests (StartRedis), and in-process miniredis for unit
// tests (StartMiniredis). Both stop at the test's cleanup.
//
// StartRedisWith starts a real server with a password, ACL users, TLS or mutual TLS
// (certificates made by testkit/tlstest); StartSentinel a primary, replicas and a
// Sentinel; StartCluster a Redis Cluster. All are real redis-server processes.
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
	"sync"
	"syscall"
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
	// Password is the default user's password (requirepass); empty for none.
	Password string
	// Users are the ACL users the server was started with.
	Users []User
	// TLS is the material a client needs to reach a server started with Options.TLS;
	// nil for a plaintext server.
	TLS *TLSFiles

	stop func() // stops the real server early (Stop); nil for miniredis
	// srv is a real server's process and how to start it again; nil for
	// miniredis.
	srv *server
}

// server is a real redis-server: how to start it, and its process now.
type server struct {
	name, bin, dir, logPath string
	args                    []string
	proc                    *os.Process
	exited                  chan struct{}
	waitErr                 error // the process's exit, once exited is closed
	paused                  bool
}

// Stop stops a real server now, before the test's cleanup (SIGTERM, then SIGKILL
// after 10 s), e.g. to make a Sentinel fail over or to take Redis away from a
// pipeline. Stopping it again is a no-op; Start starts it again.
func (r *Redis) Stop(tb testing.TB) {
	tb.Helper()
	if r.stop == nil {
		tb.Fatalf("redistest: Stop applies to a real redis-server only")
	}
	r.Resume(tb) // a stopped (SIGSTOP) process cannot handle SIGTERM
	r.stop()
}

// Start starts a real server that Stop stopped again: the same port,
// configuration and folder (and, with Options.Persist, its data, which it
// loads first, answering LOADING until then). It returns once the process
// runs, without waiting for it to answer; use WaitReady for that. The test's
// cleanup stops it.
func (r *Redis) Start(tb testing.TB) {
	tb.Helper()
	if r.srv == nil {
		tb.Fatalf("redistest: Start applies to a real redis-server only")
	}
	select {
	case <-r.srv.exited:
	default:
		tb.Fatalf("redistest: Start: %s at %s is running; Stop it first", r.srv.name, r.Addr)
	}
	stop, err := r.srv.spawn(tb)
	if err != nil {
		tb.Fatalf("redistest: start %s at %s again: %v", r.srv.name, r.Addr, err)
	}
	r.stop = stop
}

// WaitReady waits until the server answers PING (not LOADING) or 30 s pass,
// and fails the test then.
func (r *Redis) WaitReady(tb testing.TB) {
	tb.Helper()
	copts, err := r.clientOptions()
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	copts.MaxRetries = -1
	c := redis.NewClient(copts)
	defer c.Close()
	exited := make(chan struct{})
	if r.srv != nil {
		exited = r.srv.exited
	}
	if err := waitReady(c, exited); err != nil {
		tb.Fatalf("redistest: %s not ready: %v", r.Addr, err)
	}
}

// Pause stops the real server's process with SIGSTOP: it keeps its port and
// its clients' connections (the kernel still accepts new ones) but answers
// nothing, like a hung server, until Resume (SIGCONT). The test's cleanup
// resumes it before it stops it.
func (r *Redis) Pause(tb testing.TB) {
	tb.Helper()
	r.signal(tb, syscall.SIGSTOP, true)
}

// Resume continues a server that Pause stopped; it is a no-op for a server
// that is not paused.
func (r *Redis) Resume(tb testing.TB) {
	tb.Helper()
	if r.srv != nil && r.srv.paused {
		r.signal(tb, syscall.SIGCONT, false)
	}
}

func (r *Redis) signal(tb testing.TB, sig syscall.Signal, paused bool) {
	tb.Helper()
	if r.srv == nil {
		tb.Fatalf("redistest: %v applies to a real redis-server only", sig)
	}
	if err := r.srv.proc.Signal(sig); err != nil {
		tb.Fatalf("redistest: %v to %s at %s: %v", sig, r.srv.name, r.Addr, err)
	}
	r.srv.paused = paused
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
// (no RDB snapshots, no AOF), no password and plaintext, its working folder in a
// temporary folder. It returns once the server answers PING, and stops it at
// tb.Cleanup: SIGTERM, then SIGKILL after 10 s. If the start fails, the test fails with
// the tail of the server log.
//
// It needs redis-server on PATH; without it the test fails and names
// scripts/setup-redis.sh. StartRedisWith starts one with a password, ACL users or TLS.
func StartRedis(tb testing.TB) *Redis {
	tb.Helper()
	return StartRedisWith(tb, Options{})
}

// StartRedisWith is StartRedis for a server configured by opts: requirepass, ACL users,
// TLS (with or without client certificates).
func StartRedisWith(tb testing.TB, opts Options) *Redis {
	tb.Helper()
	return start(tb, opts, role{name: "redis-server"})
}

// Client returns a go-redis client for r as the default user (with r.Password, over TLS
// when r serves TLS, presenting the client certificate), closed at tb.Cleanup.
func (r *Redis) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	opts, err := r.clientOptions()
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	c := redis.NewClient(opts)
	tb.Cleanup(func() { c.Close() })
	return c
}

// clientOptions are the go-redis options of the default user's client.
func (r *Redis) clientOptions() (*redis.Options, error) {
	opts := &redis.Options{Addr: r.Addr, Password: r.Password}
	if r.TLS != nil {
		tc, err := r.TLS.ClientConfig()
		if err != nil {
			return nil, err
		}
		opts.TLSConfig = tc
	}
	return opts, nil
}

// role is what a started server is for: its name in messages, and extra
// configuration lines that depend on the ports chosen (ports[0] is the
// client port; extraPorts more are reserved).
type role struct {
	name       string
	extraPorts int
	sentinel   bool
	conf       func(ports []int) []string
}

// start starts one server of role r, retrying with new ports when a port was taken.
func start(tb testing.TB, opts Options, r role) *Redis {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redistest: redis-server not found: %v; %s", err, setupHint)
	}
	if err := opts.validate(); err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	dir, err := os.MkdirTemp("", "driftline-redis-")
	if err != nil {
		tb.Fatalf("redistest: redis folder: %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	files, err := opts.tlsFiles(dir)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	for attempt := 1; ; attempt++ {
		rd, err := startOnce(tb, bin, dir, opts, files, r)
		if err == nil {
			return rd
		}
		if errors.Is(err, errPortTaken) && attempt < startAttempts {
			tb.Logf("redistest: retrying %s start: %v", r.name, err)
			continue
		}
		tb.Fatalf("redistest: %v", err)
	}
}

// startOnce makes one start attempt. The process it leaves running is stopped by the
// cleanup it registers, also when it returns an error.
func startOnce(tb testing.TB, bin, dir string, opts Options, files *serverTLS, r role) (*Redis, error) {
	ports, err := freePorts(1 + r.extraPorts)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	lines := opts.conf(dir, ports[0], files)
	if r.conf != nil {
		lines = append(lines, r.conf(ports)...)
	}
	conf := filepath.Join(dir, fmt.Sprintf("redis-%d.conf", ports[0]))
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write %s config: %w", r.name, err)
	}
	logPath := filepath.Join(dir, fmt.Sprintf("redis-%d.log", ports[0]))
	args := []string{conf}
	if r.sentinel {
		args = append(args, "--sentinel")
	}
	srv := &server{name: r.name, bin: bin, dir: dir, logPath: logPath, args: args}
	stop, err := srv.spawn(tb)
	if err != nil {
		return nil, err
	}
	exited := srv.exited

	rd := &Redis{Addr: addr, LogPath: logPath, Password: opts.Password, Users: opts.Users, srv: srv}
	if files != nil {
		rd.TLS = &files.client
	}
	if r.sentinel {
		rd.Password = "" // a Sentinel of redistest has no password of its own
	}
	copts, err := rd.clientOptions()
	if err != nil {
		return nil, err
	}
	copts.MaxRetries = -1 // waitReady polls; a retry would only delay a verdict
	c := redis.NewClient(copts)
	defer c.Close()
	if err := waitReady(c, exited); err != nil {
		if errors.Is(err, errExited) {
			err = fmt.Errorf("%w: %w", err, srv.waitErr)
			if log, _ := os.ReadFile(logPath); strings.Contains(string(log), "Address already in use") {
				err = fmt.Errorf("%w: %w", errPortTaken, err)
			}
		}
		return nil, fmt.Errorf("%s at %s not ready: %w\nlog %s:\n%s", r.name, addr, err, logPath, tail(logPath))
	}
	rd.stop = stop
	return rd, nil
}

// spawn starts the server's process, its output appended to its log, and
// registers its stop at the test's cleanup; it returns the stop function.
func (s *server) spawn(tb testing.TB) (func(), error) {
	logFile, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", s.name, err)
	}
	defer logFile.Close()
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = s.dir, logFile, logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.name, err)
	}
	exited := make(chan struct{})
	go func() { s.waitErr = cmd.Wait(); close(exited) }()
	s.proc, s.exited, s.paused = cmd.Process, exited, false
	stopProc := proc.StopFunc(tb.Logf, tb.Errorf, "redistest: "+s.name, cmd.Process, exited, stopTimeout)
	stop := sync.OnceFunc(func() {
		if s.paused && s.proc == cmd.Process {
			_ = cmd.Process.Signal(syscall.SIGCONT)
			s.paused = false
		}
		stopProc()
	})
	tb.Cleanup(stop)
	return stop, nil
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

// freePorts reserves n distinct loopback ports by listening on port 0, then releases
// them for redis-server. Another process can take one in between; start retries then.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
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
