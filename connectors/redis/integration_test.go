//go:build integration

package redis_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/connectors/redis"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/tlstest"
)

// The tests here run on real redis-server processes (redistest): requirepass, ACL
// users, TLS and mutual TLS, a Sentinel with a replica, and a 3-node Cluster.

const waitFor = 20 * time.Second

// tlsOf is the TLS a connector client needs for r (nil for plaintext), with the
// client certificate when withCert.
func tlsOf(r *redistest.Redis, withCert bool) *redis.TLSConfig {
	if r.TLS == nil {
		return nil
	}
	t := &redis.TLSConfig{CAFile: r.TLS.CAFile}
	if withCert {
		t.CertFile, t.KeyFile = r.TLS.CertFile, r.TLS.KeyFile
	}
	return t
}

// connect builds the client c describes and pings it, failing the test on error.
func connect(t *testing.T, c redis.Config) goredis.UniversalClient {
	t.Helper()
	rdb, err := redis.New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := redis.Ping(ctx, c, rdb); err != nil {
		t.Fatal(err)
	}
	return rdb
}

// setGet writes a key and reads it back through rdb.
func setGet(t *testing.T, rdb goredis.UniversalClient, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := rdb.Set(ctx, key, "v-"+key, time.Minute).Err(); err != nil {
		t.Fatalf("set %s: %v", key, err)
	}
	if got, err := rdb.Get(ctx, key).Result(); err != nil || got != "v-"+key {
		t.Fatalf("get %s = %q, %v; want v-%s", key, got, err, key)
	}
}

// pingErr builds the client c describes and returns Ping's error, failing the test
// if it takes longer than waitFor.
func pingErr(t *testing.T, c redis.Config) (error, time.Duration) {
	t.Helper()
	rdb, err := redis.New(c)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	start := time.Now()
	err = redis.Ping(ctx, c, rdb)
	return err, time.Since(start)
}

func TestTLSRequirePassDefaultUser(t *testing.T) {
	r := redistest.StartRedisWith(t, redistest.Options{Password: "requirepass-secret", TLS: true})
	c := redis.Config{Addrs: []string{r.Addr}, Password: pipeline.NewSecret(r.Password), TLS: tlsOf(r, false)}
	setGet(t, connect(t, c), "requirepass")

	c.Password = pipeline.NewSecret("wrong-requirepass")
	err, _ := pingErr(t, c)
	if err == nil || !strings.Contains(err.Error(), r.Addr) || !strings.Contains(err.Error(), "the default user") || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("ping with a wrong requirepass = %v; want WRONGPASS naming the address and the default user", err)
	}
	if strings.Contains(err.Error(), "requirepass-secret") || strings.Contains(err.Error(), "wrong-requirepass") {
		t.Fatalf("error %q holds a password", err)
	}
}

func TestACLUserAndWrongPasswordFailsClearly(t *testing.T) {
	const good, wrong = "app-secret-91c", "app-wrong-22d"
	r := redistest.StartRedisWith(t, redistest.Options{
		Password: "default-secret",
		Users:    []redistest.User{{Name: "app", Password: good, Rules: []string{"~driftline:*", "+@all"}}},
	})
	c := redis.Config{Addrs: []string{r.Addr}, Username: "app", Password: pipeline.NewSecret(good)}
	rdb := connect(t, c)
	setGet(t, rdb, "driftline:acl")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if who, err := rdb.Do(ctx, "ACL", "WHOAMI").Text(); err != nil || who != "app" {
		t.Fatalf("ACL WHOAMI = %q, %v; want app", who, err)
	}
	// The ACL applies: a key outside the user's pattern is refused.
	if err := rdb.Set(ctx, "other:key", "v", 0).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("set outside the ACL's keys = %v; want NOPERM", err)
	}

	c.Password = pipeline.NewSecret(wrong)
	err, took := pingErr(t, c)
	t.Logf("took %s: %v", took.Round(time.Millisecond), err)
	want := "redis: ping " + r.Addr + ` as user "app": WRONGPASS`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("ping with a wrong password = %v; want it to start %q", err, want)
	}
	if strings.Contains(err.Error(), good) || strings.Contains(err.Error(), wrong) {
		t.Fatalf("error %q holds a password", err)
	}
	if took > 5*time.Second {
		t.Errorf("the wrong password took %s to fail; want a quick failure", took)
	}
}

func TestTLSUnknownCAFailsAsVerification(t *testing.T) {
	r := redistest.StartRedisWith(t, redistest.Options{TLS: true})
	other, err := tlstest.NewCA(t.TempDir(), "other")
	if err != nil {
		t.Fatal(err)
	}
	err, _ = pingErr(t, redis.Config{Addrs: []string{r.Addr}, TLS: &redis.TLSConfig{CAFile: other.CertFile}})
	if err == nil || !strings.Contains(err.Error(), r.Addr) || !strings.Contains(err.Error(), "TLS verification of the server's certificate failed") {
		t.Fatalf("ping trusting another CA = %v; want a TLS verification failure naming the address", err)
	}
}

func TestPlaintextClientOfTLSServerFails(t *testing.T) {
	r := redistest.StartRedisWith(t, redistest.Options{TLS: true})
	err, took := pingErr(t, redis.Config{Addrs: []string{r.Addr}, DialTimeout: 2 * time.Second})
	t.Logf("took %s: %v", took.Round(time.Millisecond), err)
	if err == nil || !strings.Contains(err.Error(), r.Addr) || !strings.Contains(err.Error(), "redis.tls") {
		t.Fatalf("plaintext ping of a TLS-only server = %v; want an error naming the address and redis.tls", err)
	}
}

func TestMutualTLS(t *testing.T) {
	r := redistest.StartRedisWith(t, redistest.Options{Password: "pw", TLS: true, ClientAuth: true})
	c := redis.Config{Addrs: []string{r.Addr}, Password: pipeline.NewSecret("pw"), TLS: tlsOf(r, true)}
	setGet(t, connect(t, c), "mtls")

	c.TLS = tlsOf(r, false)
	err, _ := pingErr(t, c)
	if err == nil || !strings.Contains(err.Error(), r.Addr) || !strings.Contains(err.Error(), "the server refused the client's certificate") {
		t.Fatalf("ping without a client certificate under tls-auth-clients yes = %v; want an error naming the address and the refused certificate", err)
	}
}

// TestSentinelFollowsFailover reaches the primary through the Sentinel, over TLS with
// an ACL user, stops the primary, and writes again once the Sentinel has promoted the
// replica.
func TestSentinelFollowsFailover(t *testing.T) {
	s := redistest.StartSentinel(t, redistest.Options{
		Users: []redistest.User{{Name: "app", Password: "app-secret"}},
		TLS:   true,
	}, 1)
	c := redis.Config{Mode: redis.ModeSentinel, Addrs: []string{s.Addr}, MasterName: s.MasterName,
		Username: "app", Password: pipeline.NewSecret("app-secret"), TLS: tlsOf(s.Primary, false)}
	rdb := connect(t, c)
	setGet(t, rdb, "before-failover")

	s.Primary.Stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for {
		addr, err := s.PrimaryAddr(ctx, t)
		if err == nil && addr == s.Replicas[0].Addr {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the Sentinel did not promote the replica %s within %s (primary now %q, %v)", s.Replicas[0].Addr, waitFor, addr, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	var err error
	for {
		// The client finds the new primary; a write may fail until it has.
		if err = rdb.Set(ctx, "after-failover", "v", time.Minute).Err(); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no write after the failover within %s: %v", waitFor, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if got, err := rdb.Get(ctx, "before-failover").Result(); err != nil || got != "v-before-failover" {
		t.Fatalf("the key written before the failover = %q, %v; want it replicated", got, err)
	}
}

// TestClusterHashTagLetsMultiKeyScriptRun runs a two-key Lua script on a 3-node
// Cluster (TLS, requirepass): with KeyPrefix's hash tag both keys share a slot and the
// script runs; without it the keys spread and Redis refuses the script.
func TestClusterHashTagLetsMultiKeyScriptRun(t *testing.T) {
	cl := redistest.StartCluster(t, redistest.Options{Password: "cluster-secret", TLS: true}, 3)
	c := redis.Config{Mode: redis.ModeCluster, Addrs: cl.Addrs, Password: pipeline.NewSecret("cluster-secret"), TLS: tlsOf(cl.Nodes[0], false)}
	rdb := connect(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	script := goredis.NewScript(`redis.call("SET", KEYS[1], ARGV[1]); redis.call("SET", KEYS[2], ARGV[1]); return redis.call("MGET", KEYS[1], KEYS[2])`)
	// Key names chosen so that, without a tag, the two keys fall in different slots.
	keys := func(prefix string) []string { return []string{prefix + "dedupe:a", prefix + "entity:b"} }

	tagged := (&pipeline.RedisSpec{KeyPrefix: "driftline:demo:", HashTag: true}).Prefix()
	if tagged != "{driftline:demo:}" {
		t.Fatalf("Prefix() = %q; want {driftline:demo:}", tagged)
	}
	got, err := script.Run(ctx, rdb, keys(tagged), "x").StringSlice()
	if err != nil || len(got) != 2 || got[0] != "x" || got[1] != "x" {
		t.Fatalf("two-key script with the hash tag = %v, %v; want [x x]", got, err)
	}

	plain := (&pipeline.RedisSpec{KeyPrefix: "driftline:demo:"}).Prefix()
	k := keys(plain)
	s0, err0 := rdb.ClusterKeySlot(ctx, k[0]).Result()
	s1, err1 := rdb.ClusterKeySlot(ctx, k[1]).Result()
	if err := errors.Join(err0, err1); err != nil || s0 == s1 {
		t.Fatalf("untagged keys share slot %d/%d (%v); the test needs keys in two slots", s0, s1, err)
	}
	if _, err := script.Run(ctx, rdb, k, "x").Result(); err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Fatalf("two-key script without the hash tag = %v; want CROSSSLOT", err)
	}
}
