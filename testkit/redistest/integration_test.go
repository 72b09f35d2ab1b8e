//go:build integration

package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestRealRedis(t *testing.T) {
	r := StartRedis(t)
	if r.Mini != nil {
		t.Fatal("StartRedis returned miniredis")
	}
	if _, err := os.Stat(r.LogPath); err != nil {
		t.Fatalf("redis log: %v", err)
	}
	setGetExpire(t, r)
}

func TestRealRedisPasswordACLAndTLS(t *testing.T) {
	r := StartRedisWith(t, Options{
		Password: "default-secret",
		Users:    []User{{Name: "app", Password: "app-secret"}},
		TLS:      true,
	})
	if r.TLS == nil || r.Password != "default-secret" {
		t.Fatalf("Redis = %+v; want TLS files and the password", r)
	}
	setGetExpire(t, r)

	// The ACL user authenticates; a plaintext client is not served.
	tc, err := r.TLS.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	app := redis.NewClient(&redis.Options{Addr: r.Addr, Username: "app", Password: "app-secret", TLSConfig: tc, MaxRetries: -1})
	defer app.Close()
	if who, err := app.Do(ctx, "ACL", "WHOAMI").Text(); err != nil || who != "app" {
		t.Fatalf("ACL WHOAMI = %q, %v; want app", who, err)
	}
	plain := redis.NewClient(&redis.Options{Addr: r.Addr, Password: "default-secret", MaxRetries: -1})
	defer plain.Close()
	if err := plain.Ping(ctx).Err(); err == nil {
		t.Fatal("a plaintext client was served by a TLS-only server")
	}
}

func TestRealRedisMutualTLSNeedsClientCertificate(t *testing.T) {
	r := StartRedisWith(t, Options{TLS: true, ClientAuth: true})
	setGetExpire(t, r) // Client presents the client certificate
	tc, err := r.TLS.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	tc.Certificates = nil
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: r.Addr, TLSConfig: tc, MaxRetries: -1})
	defer c.Close()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("a client without a certificate was served under tls-auth-clients yes")
	}
}

func TestRealSentinelFindsPrimary(t *testing.T) {
	s := StartSentinel(t, Options{Password: "pw", TLS: true}, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr, err := s.PrimaryAddr(ctx, t)
	if err != nil || addr != s.Primary.Addr {
		t.Fatalf("sentinel says the primary is %q, %v; want %s", addr, err, s.Primary.Addr)
	}
}

func TestRealClusterServesEverySlot(t *testing.T) {
	c := StartCluster(t, Options{Password: "pw", TLS: true}, 3)
	if len(c.Addrs) != 3 {
		t.Fatalf("cluster has %d nodes; want 3", len(c.Addrs))
	}
	tc, err := c.Nodes[0].TLS.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs, Password: "pw", TLSConfig: tc})
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	owners := map[string]bool{}
	for i := range 30 {
		key := fmt.Sprintf("k%d", i)
		if err := cl.Set(ctx, key, i, time.Minute).Err(); err != nil {
			t.Fatalf("set %s: %v", key, err)
		}
		slot, err := c.Nodes[0].Client(t).ClusterKeySlot(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		owners[c.Addrs[int(slot)*3/clusterSlots]] = true
	}
	if len(owners) != 3 {
		t.Fatalf("30 keys landed on %d nodes; want all 3", len(owners))
	}
	if err := cl.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		n, err := m.DBSize(ctx).Result()
		if err == nil && n == 0 {
			err = fmt.Errorf("node %s holds no key", m.Options().Addr)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestRealRedisStopStartPersistsAndLoads: a server with Persist keeps its
// data across Stop and Start on the same port, and with KeyLoadDelay it
// answers LOADING for a while after Start.
func TestRealRedisStopStartPersistsAndLoads(t *testing.T) {
	r := StartRedisWith(t, Options{Persist: true, KeyLoadDelay: 100 * time.Microsecond})
	c := r.Client(t)
	ctx := context.Background()
	if err := c.Eval(ctx, "for i=1,20000 do redis.call('SET', 'k'..i, i) end return 1", nil).Err(); err != nil {
		t.Fatal(err)
	}
	r.Stop(t)
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("a stopped server answered PING")
	}
	r.Start(t)
	sawLoading := false
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.Ping(ctx).Err()
		if err == nil {
			break
		}
		if redis.IsLoadingError(err) {
			sawLoading = true
		}
		if time.Now().After(deadline) {
			t.Fatalf("no PONG 30 s after Start: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !sawLoading {
		t.Error("the server never answered LOADING after Start, with a key load delay")
	}
	if n, err := c.DBSize(ctx).Result(); err != nil || n != 20000 {
		t.Fatalf("%d keys after the restart (%v), want 20000", n, err)
	}
}

// TestRealRedisPauseHangsAndResumes: a paused server accepts connections
// but answers nothing until Resume; the client's commands time out.
func TestRealRedisPauseHangsAndResumes(t *testing.T) {
	r := StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: r.Addr, ReadTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	r.Pause(t)
	start := time.Now()
	err := c.Get(ctx, "k").Err()
	var nerr interface{ Timeout() bool }
	if err == nil || !errors.As(err, &nerr) || !nerr.Timeout() {
		t.Fatalf("GET on a paused server: %v after %s, want a timeout", err, time.Since(start))
	}
	r.Resume(t)
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET after Resume: %q, %v", v, err)
	}
	r.Pause(t) // the cleanup resumes it before it stops it
}
