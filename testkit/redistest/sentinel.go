package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/testkit/tlstest"
)

// MasterName is the name a redistest Sentinel watches its primary under.
const MasterName = "driftline"

// sentinelDownAfter is how long the Sentinel waits before it calls an unanswering
// primary down; a failover follows within about a second more.
const sentinelDownAfter = time.Second

// Sentinel is a Redis primary with its replicas, watched by one Sentinel, owned by the
// test that started it. A client finds the primary by asking the Sentinel at Addr for
// MasterName.
type Sentinel struct {
	// Addr is the Sentinel's address, 127.0.0.1:port.
	Addr string
	// MasterName is the name the Sentinel watches the primary under.
	MasterName string
	// Primary and Replicas are the data servers, all started with the same Options
	// (the Sentinel shares their TLS settings but has no password of its own).
	Primary  *Redis
	Replicas []*Redis
	// Process is the Sentinel itself (its log, or Stop).
	Process *Redis
}

// StartSentinel starts a primary, replicas replicas of it and one Sentinel (quorum 1,
// down-after 1 s), all configured by opts, and returns once the replicas are in sync
// and the Sentinel knows them all. With opts.TLS every server, replication and the
// Sentinel's own connections use TLS, with one CA (opts.CA, or one made here). The
// replicas and the Sentinel authenticate to the primary with opts.Password, or else as
// the first of opts.Users.
func StartSentinel(tb testing.TB, opts Options, replicas int) *Sentinel {
	tb.Helper()
	opts = withSharedCA(tb, opts)
	primary := StartRedisWith(tb, opts)
	user, pass := replicationAuth(opts)
	primaryPort := port(primary.Addr)
	s := &Sentinel{MasterName: MasterName, Primary: primary}
	for i := range replicas {
		r := start(tb, opts, role{name: "redis replica " + strconv.Itoa(i), conf: func([]int) []string {
			lines := []string{"replicaof 127.0.0.1 " + primaryPort}
			if user != "" {
				lines = append(lines, "masteruser "+user)
			}
			if pass != "" {
				lines = append(lines, "masterauth "+pass)
			}
			return lines
		}})
		s.Replicas = append(s.Replicas, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for _, r := range s.Replicas {
		c := r.Client(tb)
		if err := poll(ctx, "replica "+r.Addr+" in sync", func(ctx context.Context) (bool, error) {
			info, err := c.Info(ctx, "replication").Result()
			return strings.Contains(info, "master_link_status:up"), err
		}); err != nil {
			tb.Fatalf("redistest: %v\nlog %s:\n%s", err, r.LogPath, tail(r.LogPath))
		}
	}

	sopts := Options{TLS: opts.TLS, ClientAuth: opts.ClientAuth, CA: opts.CA}
	s.Process = start(tb, sopts, role{name: "redis sentinel", sentinel: true, conf: func([]int) []string {
		lines := []string{
			fmt.Sprintf("sentinel monitor %s 127.0.0.1 %s 1", MasterName, primaryPort),
			fmt.Sprintf("sentinel down-after-milliseconds %s %d", MasterName, sentinelDownAfter.Milliseconds()),
			fmt.Sprintf("sentinel failover-timeout %s 10000", MasterName),
		}
		if user != "" {
			lines = append(lines, fmt.Sprintf("sentinel auth-user %s %s", MasterName, user))
		}
		if pass != "" {
			lines = append(lines, fmt.Sprintf("sentinel auth-pass %s %s", MasterName, pass))
		}
		return lines
	}})
	s.Addr = s.Process.Addr
	sc := s.sentinelClient(tb)
	if err := poll(ctx, "sentinel knows every replica", func(ctx context.Context) (bool, error) {
		rs, err := sc.Replicas(ctx, MasterName).Result()
		if err != nil {
			return false, err
		}
		up := 0
		for _, r := range rs {
			if !strings.Contains(r["flags"], "down") && r["master-link-status"] == "ok" {
				up++
			}
		}
		return up == replicas, nil
	}); err != nil {
		tb.Fatalf("redistest: %v\nlog %s:\n%s", err, s.Process.LogPath, tail(s.Process.LogPath))
	}
	return s
}

// PrimaryAddr asks the Sentinel where the primary is now.
func (s *Sentinel) PrimaryAddr(ctx context.Context, tb testing.TB) (string, error) {
	tb.Helper()
	a, err := s.sentinelClient(tb).GetMasterAddrByName(ctx, MasterName).Result()
	if err != nil {
		return "", err
	}
	return a[0] + ":" + a[1], nil
}

func (s *Sentinel) sentinelClient(tb testing.TB) *redis.SentinelClient {
	tb.Helper()
	opts, err := s.Process.clientOptions()
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	c := redis.NewSentinelClient(opts)
	tb.Cleanup(func() { c.Close() })
	return c
}

// withSharedCA gives a TLS opts a CA, so that servers that talk to each other trust
// one another.
func withSharedCA(tb testing.TB, opts Options) Options {
	tb.Helper()
	if !opts.TLS || opts.CA != nil {
		return opts
	}
	dir, err := os.MkdirTemp("", "driftline-redis-ca-")
	if err != nil {
		tb.Fatalf("redistest: CA folder: %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	if opts.CA, err = tlstest.NewCA(dir, "redis"); err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	return opts
}

// replicationAuth is the user and password replicas and the Sentinel use.
func replicationAuth(opts Options) (user, pass string) {
	if opts.Password != "" {
		return "", opts.Password
	}
	if len(opts.Users) > 0 {
		return opts.Users[0].Name, opts.Users[0].Password
	}
	return "", ""
}

func port(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

// poll calls cond every 50 ms until it holds or ctx ends; the error names what and
// cond's last error.
func poll(ctx context.Context, what string, cond func(context.Context) (bool, error)) error {
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, errors.Join(ctx.Err(), last))
		case <-time.After(50 * time.Millisecond):
		}
	}
}
