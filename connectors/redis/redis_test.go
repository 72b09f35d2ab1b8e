package redis_test

import (
	"context"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/connectors/redis"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/redistest"
)

func TestConfigValidate(t *testing.T) {
	pw := pipeline.NewSecret("pw")
	one := []string{"r:6379"}
	for _, c := range []redis.Config{
		{Addrs: one},
		{Mode: redis.ModeStandalone, Addrs: one, Username: "app", Password: pw, DB: 3, TLS: &redis.TLSConfig{CAFile: "ca.pem"}},
		{Mode: redis.ModeSentinel, Addrs: []string{"s1:26379", "s2:26379"}, MasterName: "primary", Password: pw, DB: 1},
		{Mode: redis.ModeCluster, Addrs: []string{"n1:6379", "n2:6379"}, Password: pw},
	} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	for want, c := range map[string]redis.Config{
		"no address":                                {},
		"empty address":                             {Addrs: []string{""}},
		"standalone takes one address":              {Addrs: []string{"a:1", "b:2"}},
		"master_name is required":                   {Mode: redis.ModeSentinel, Addrs: one},
		"db must be 0 with mode cluster":            {Mode: redis.ModeCluster, Addrs: one, DB: 1},
		`unknown mode "replicated"`:                 {Mode: "replicated", Addrs: one},
		"db must not be negative":                   {Addrs: one, DB: -1},
		`username "app" needs a password`:           {Addrs: one, Username: "app"},
		"master_name applies to mode sentinel only": {Mode: redis.ModeCluster, Addrs: one, MasterName: "x"},
		"dial timeout must not be negative":         {Addrs: one, DialTimeout: -time.Second},
		"timeout must not be negative":              {Addrs: one, Timeout: -time.Second},
		"go together":                               {Addrs: one, TLS: &redis.TLSConfig{CertFile: "c.pem"}},
	} {
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "redis: ") {
			t.Errorf("%+v: Validate = %v; want a redis: error saying %q", c, err, want)
		}
		if _, nerr := redis.New(c); nerr == nil {
			t.Errorf("%+v: New accepted a config Validate refuses", c)
		}
	}
}

func TestNewAndPingOnMiniredis(t *testing.T) {
	m := redistest.StartMiniredis(t)
	m.Mini.RequireUserAuth("app", "app-secret")
	c := redis.Config{Addrs: []string{m.Addr}, Username: "app", Password: pipeline.NewSecret("app-secret")}
	rdb, err := redis.New(c)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := redis.Ping(ctx, c, rdb); err != nil {
		t.Fatal(err)
	}

	c.Password = pipeline.NewSecret("wrong-secret")
	bad, err := redis.New(c)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	err = redis.Ping(ctx, c, bad)
	want := "redis: ping " + m.Addr + ` as user "app": `
	if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "secret") {
		t.Fatalf("Ping with a wrong password = %v; want it to start %q and hold no password", err, want)
	}
}

func TestNewNamesTheUnreadableFile(t *testing.T) {
	_, err := redis.New(redis.Config{Addrs: []string{"r:6379"}, TLS: &redis.TLSConfig{CAFile: "/nonexistent/ca.pem"}})
	if err == nil || !strings.Contains(err.Error(), "tls.ca_file") || !strings.Contains(err.Error(), "/nonexistent/ca.pem") {
		t.Fatalf("New with a missing CA file = %v; want an error naming tls.ca_file and the path", err)
	}
}

// TestClientSendsACallOnce: the client never resends a call (see New): a
// resend after a lost reply would run a script a second time.
func TestClientSendsACallOnce(t *testing.T) {
	rdb, err := redis.New(redis.Config{Addrs: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	c, ok := rdb.(*goredis.Client)
	if !ok {
		t.Fatalf("a standalone client of type %T", rdb)
	}
	if n := c.Options().MaxRetries; n != 0 {
		t.Fatalf("the client resends a failed call up to %d times", n)
	}
}
