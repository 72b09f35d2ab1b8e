package redis_test

import (
	"context"
	"net"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/connectors/redis"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/nettest"
	"github.com/driftline/driftline/testkit/redistest"
)

// silentServer accepts connections and never answers, like a Redis that
// hangs (a stopped process: the kernel still accepts).
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// A call to a Redis that hangs fails within the client's bound (twice the
// timeout: one retry on a new connection) instead of stalling, and is
// called unavailable (a timeout); a refused connection is unavailable too.
// Without Config.Timeout, go-redis would wait 5 s per read and retry three
// times.
func TestHungOrDownRedisFailsFastAndIsUnavailable(t *testing.T) {
	ctx := context.Background()
	for name, tc := range map[string]struct {
		addr, reason string
	}{
		"hung": {silentServer(t), "timeout"},
		"down": {nettest.ClosedAddr(t), "connection refused"},
	} {
		rdb, err := redis.New(redis.Config{Addrs: []string{tc.addr}, Timeout: 200 * time.Millisecond, DialTimeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = rdb.Set(ctx, "k", "v", 0).Err()
		took := time.Since(start)
		rdb.Close()
		if err == nil {
			t.Fatalf("%s: SET succeeded", name)
		}
		if took > 2*time.Second {
			t.Errorf("%s: SET failed after %s, want within about 2×200ms", name, took)
		}
		reason, ok := redis.Unavailable(err)
		if !ok || reason != tc.reason {
			t.Errorf("%s: Unavailable(%v) = %q, %v; want %q, true", name, err, reason, ok, tc.reason)
		}
	}
	// A caller's deadline bounds a call too.
	rdb, err := redis.New(redis.Config{Addrs: []string{silentServer(t)}})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := rdb.Ping(dctx).Err(); err == nil || time.Since(start) > time.Second {
		t.Errorf("PING with a 100ms deadline: %v after %s", err, time.Since(start))
	} else if _, ok := redis.Unavailable(err); !ok {
		t.Errorf("a deadline exceeded is not unavailable: %v", err)
	}
}

// Answers about the request itself are not unavailability: a wrong
// password (a permanent error the pipeline fails fast on), a wrong type; a
// canceled context and a closed client are not either.
func TestUnavailableLeavesRequestErrorsOut(t *testing.T) {
	ctx := context.Background()
	r := redistest.StartMiniredis(t)
	r.Mini.RequireAuth("right")
	rc := redis.Config{Addrs: []string{r.Addr}, Password: pipeline.NewSecret("wrong")}
	rdb, err := redis.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if err := redis.Ping(ctx, rc, rdb); err == nil {
		t.Fatal("a wrong password was accepted")
	} else if _, ok := redis.Unavailable(err); ok {
		t.Errorf("a wrong password is called unavailable: %v", err)
	}
	good, err := redis.New(redis.Config{Addrs: []string{r.Addr}, Password: pipeline.NewSecret("right")})
	if err != nil {
		t.Fatal(err)
	}
	if err := good.Set(ctx, "s", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := good.HGet(ctx, "s", "f").Err(); err == nil {
		t.Fatal("HGET of a string succeeded")
	} else if _, ok := redis.Unavailable(err); ok {
		t.Errorf("a wrong type is called unavailable: %v", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := good.Ping(canceled).Err(); err == nil {
		t.Fatal("PING with a canceled context succeeded")
	} else if _, ok := redis.Unavailable(err); ok {
		t.Errorf("a canceled call is called unavailable: %v", err)
	}
	good.Close()
	if err := good.Ping(ctx).Err(); err == nil {
		t.Fatal("PING on a closed client succeeded")
	} else if _, ok := redis.Unavailable(err); ok {
		t.Errorf("a closed client is called unavailable: %v", err)
	}
}

// replyServer answers every command with the one RESP reply line given.
func replyServer(t *testing.T, reply string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					if _, err := c.Write([]byte(reply + "\r\n")); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// A script whose redis.call was answered LOADING (miniredis wraps the inner
// answer in a script error when it starts loading while the script runs) is
// an outage, like a LOADING answer to the EVAL itself; a script's own
// error is not.
func TestUnavailableSeesThroughAWrappedScriptCall(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		reply string
		want  bool
	}{
		{"-ERR Error compiling script (new function): :45: LOADING Redis is loading the dataset in memory stack traceback: [G]: in function 'call'", true},
		{"-ERR Error running script (call to f_1): @user_script:3: BUSY Redis is busy running a script", true},
		{"-LOADING Redis is loading the dataset in memory", true},
		{"-ERR Error compiling script (new function): :3: attempt to compare nil with number", false},
		{"-ERR Error running script (call to f_1): @user_script:3: WRONGTYPE Operation against a key holding the wrong kind of value", false},
	} {
		rdb := goredis.NewClient(&goredis.Options{Addr: replyServer(t, c.reply), Protocol: 2, DisableIdentity: true, MaxRetries: -1})
		err := rdb.Eval(ctx, "return 1", nil).Err()
		rdb.Close()
		if err == nil {
			t.Fatalf("%q: no error", c.reply)
		}
		if _, ok := redis.Unavailable(err); ok != c.want {
			t.Errorf("Unavailable(%q) = %v, want %v", err, ok, c.want)
		}
	}
}

// A network failure or a deadline counts as Redis's only on a client whose
// errors are marked: the same refused connection from a client that is
// not (or from another dependency) is not Redis unavailable. Marking keeps
// the server's answers as they are (redis.Nil is still redis.Nil) and
// marks a pipeline's commands and its error.
func TestUnavailableIsRedisOnlyOnMarkedClients(t *testing.T) {
	ctx := context.Background()
	down := nettest.ClosedAddr(t)
	plain := goredis.NewClient(&goredis.Options{Addr: down, MaxRetries: -1})
	defer plain.Close()
	err := plain.Ping(ctx).Err()
	if err == nil {
		t.Fatal("PING to a closed port succeeded")
	}
	if _, ok := redis.Unavailable(err); ok {
		t.Errorf("a refused connection of an unmarked client is called Redis unavailable: %v", err)
	}
	if _, ok := redis.Unavailable(context.DeadlineExceeded); ok {
		t.Error("a bare deadline is called Redis unavailable")
	}
	redis.MarkErrors(plain)
	redis.MarkErrors(plain) // a second mark wraps nothing twice
	err = plain.Ping(ctx).Err()
	if reason, ok := redis.Unavailable(err); !ok || reason != "connection refused" {
		t.Errorf("Unavailable(%v) of a marked client = %q, %v; want connection refused", err, reason, ok)
	}
	if err.Error() != "dial tcp "+down+": connect: connection refused" {
		t.Errorf("the marked error reads %q, want the call's own text", err)
	}
	pipe := plain.Pipeline()
	get := pipe.Get(ctx, "k")
	_, err = pipe.Exec(ctx)
	if _, ok := redis.Unavailable(err); !ok {
		t.Errorf("a marked pipeline's error %v is not unavailable", err)
	}
	if _, ok := redis.Unavailable(get.Err()); !ok {
		t.Errorf("a marked pipeline's command error %v is not unavailable", get.Err())
	}

	r := redistest.StartMiniredis(t)
	rdb, err := redis.New(redis.Config{Addrs: []string{r.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if err := rdb.Get(ctx, "missing").Err(); err != goredis.Nil {
		t.Errorf("GET of a missing key on a marked client: %v, want redis.Nil itself", err)
	}
	pipe = rdb.Pipeline()
	missing := pipe.Get(ctx, "missing")
	if _, err := pipe.Exec(ctx); err != goredis.Nil || missing.Err() != goredis.Nil {
		t.Errorf("pipelined GET of a missing key: %v (command %v), want redis.Nil itself", err, missing.Err())
	}
}
