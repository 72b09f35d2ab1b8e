package redistest

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// setGetExpire writes a key with a TTL through a go-redis client and reads it back.
func setGetExpire(t *testing.T, r *Redis) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := r.Client(t)
	if err := c.Set(ctx, "driftline:k", "v1", time.Minute).Err(); err != nil {
		t.Fatalf("set: %v", err)
	}
	got, err := c.Get(ctx, "driftline:k").Result()
	if err != nil || got != "v1" {
		t.Fatalf("get = %q, %v; want v1", got, err)
	}
	ttl, err := c.TTL(ctx, "driftline:k").Result()
	if err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("ttl = %v, %v; want in (0, 1m]", ttl, err)
	}
}

func TestMiniredis(t *testing.T) {
	r := StartMiniredis(t)
	if r.Mini == nil || !strings.HasPrefix(r.Addr, "127.0.0.1:") {
		t.Fatalf("miniredis: Mini=%v Addr=%q; want a server on 127.0.0.1", r.Mini, r.Addr)
	}
	setGetExpire(t, r)
	if v, err := r.Mini.Get("driftline:k"); err != nil || v != "v1" {
		t.Fatalf("miniredis holds %q, %v; want v1", v, err)
	}
}

func TestStartRedisNamesSetupScript(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	ft := &fatalRecorder{T: t}
	done := make(chan struct{})
	go func() { defer close(done); StartRedis(ft) }()
	<-done
	if !strings.Contains(ft.msg, "scripts/setup-redis.sh") {
		t.Fatalf("StartRedis without redis-server failed with %q; want it to name scripts/setup-redis.sh", ft.msg)
	}
}

// fatalRecorder records the message of Fatalf and ends the calling goroutine, as
// testing.T does, without failing the real test.
type fatalRecorder struct {
	*testing.T
	msg string
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
