// Package redis builds every go-redis client of driftline — standalone,
// Sentinel or Cluster, with ACL credentials and TLS — from one Config, and
// says what the pipeline's key prefix is. Stages and the model registry
// receive the client it builds; they never build one.
package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/connectors/internal/tlsfiles"
	"github.com/driftline/driftline/pipeline"
)

// The deployment modes: the names a spec uses.
const (
	ModeStandalone = pipeline.RedisStandalone
	ModeSentinel   = pipeline.RedisSentinel
	ModeCluster    = pipeline.RedisCluster
)

// Config says how to reach Redis. The zero values of the optional fields
// mean: standalone, no credentials, DB 0, plaintext.
type Config struct {
	// Mode is standalone (default), sentinel or cluster.
	Mode string
	// Addrs are host:port addresses: the server (standalone, exactly one),
	// the sentinels (sentinel) or seed nodes (cluster). Required.
	Addrs []string
	// MasterName is the Sentinel primary's name (sentinel only, required there).
	MasterName string
	// Username and Password authenticate (Username for an ACL user;
	// Password alone for requirepass). With mode sentinel they apply to the
	// primary; the sentinels are reached without credentials.
	Username string
	Password pipeline.Secret
	// DB selects the database (standalone and sentinel; a Cluster has only 0).
	DB int
	// TLS, when set, encrypts every connection.
	TLS *TLSConfig
	// DialTimeout bounds one connection attempt (default 5s).
	DialTimeout time.Duration
	// Timeout bounds each command's socket writes and reads (default
	// DefaultTimeout), so that a Redis that hangs (a stopped process, a
	// network that drops packets) fails the call instead of stalling it.
	// The client also honours the deadline of each call's context.
	Timeout time.Duration
}

// DefaultTimeout is Config.Timeout's default. A call is sent once (see
// New), so one call against a hung server fails after about this.
const DefaultTimeout = 2 * time.Second

// TLSConfig is the client's TLS material, read from PEM files when the
// client is built: CAFile replaces the system roots when set; CertFile and
// KeyFile go together (mutual TLS); ServerName overrides the name checked
// against the server's certificate (default: the host dialed);
// InsecureSkipVerify is off unless set, and is for tests.
type TLSConfig = tlsfiles.Files

// Validate checks the config; its errors name the field at fault.
func (c Config) Validate() error {
	if len(c.Addrs) == 0 {
		return errors.New("redis: no address")
	}
	for _, a := range c.Addrs {
		if strings.TrimSpace(a) == "" {
			return errors.New("redis: empty address")
		}
	}
	switch c.Mode {
	case "", ModeStandalone:
		if len(c.Addrs) != 1 {
			return fmt.Errorf("redis: mode standalone takes one address, got %d", len(c.Addrs))
		}
	case ModeSentinel:
		if c.MasterName == "" {
			return errors.New("redis: master_name is required with mode sentinel")
		}
	case ModeCluster:
		if c.DB != 0 {
			return fmt.Errorf("redis: db must be 0 with mode cluster, got %d", c.DB)
		}
	default:
		return fmt.Errorf("redis: mode: unknown mode %q (want standalone, sentinel or cluster)", c.Mode)
	}
	if c.DB < 0 {
		return fmt.Errorf("redis: db must not be negative, got %d", c.DB)
	}
	if c.Username != "" && c.Password.IsZero() {
		return fmt.Errorf("redis: username %q needs a password", c.Username)
	}
	if c.MasterName != "" && c.Mode != ModeSentinel {
		return errors.New("redis: master_name applies to mode sentinel only")
	}
	if c.DialTimeout < 0 {
		return fmt.Errorf("redis: dial timeout must not be negative, got %s", c.DialTimeout)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("redis: timeout must not be negative, got %s", c.Timeout)
	}
	if t := c.TLS; t != nil {
		if err := t.Validate(); err != nil {
			return fmt.Errorf("redis: %w", err)
		}
	}
	return nil
}

// New builds the client c describes. It does not connect: call Ping to
// check the server (errors name the address, never the password). Every
// command is bounded by Config.Timeout and its context's deadline, and its
// errors are marked as Redis's (MarkErrors).
func New(c Config) (goredis.UniversalClient, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	opts := &goredis.UniversalOptions{
		Addrs:                 c.Addrs,
		Username:              c.Username,
		Password:              c.Password.Reveal(),
		DB:                    c.DB,
		DialTimeout:           c.DialTimeout,
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		ContextTimeoutEnabled: true,
		// No resend (-1: go-redis reads 0 as its default of 3). go-redis
		// resends a call whose read failed or timed out, after Redis may
		// have run it, and says nothing: a second run of a script whose
		// first run happened. Not every script is safe to run twice — the
		// label join's are (joinBatch's taken marks, log mode's marks, the
		// dedupe's positions, putBatch re-caching a prediction pending
		// once), but a put whose reply is lost has taken the parked labels
		// it joined, and the registry's scripts register a version or move
		// an alias again (HINCRBY). So a failed call fails: the partition
		// loop retries the batch (logged, with its backoff, through the
		// idempotent scripts), the registry's callers see the error. The
		// resend's other use, a pooled connection that broke when Redis
		// restarted, is the pool's: it checks a connection before handing
		// it out.
		MaxRetries: -1,
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if c.TLS != nil {
		tc, err := c.TLS.Config()
		if err != nil {
			return nil, fmt.Errorf("redis: %w", err)
		}
		opts.TLSConfig = tc
	}
	var rdb goredis.UniversalClient
	switch c.Mode {
	case ModeSentinel:
		opts.MasterName = c.MasterName
		rdb = goredis.NewFailoverClient(opts.Failover())
	case ModeCluster:
		rdb = goredis.NewClusterClient(opts.Cluster())
	default:
		rdb = goredis.NewClient(opts.Simple())
	}
	MarkErrors(rdb)
	return rdb, nil
}

// Ping checks that the server answers rdb (built from c) as c's user,
// within ctx. Its error names the mode, the addresses and the user, never
// the password, and says what a TLS failure means, e.g.
//
//	redis: ping 127.0.0.1:6379 as user "app": WRONGPASS invalid username-password pair or user is disabled.
func Ping(ctx context.Context, c Config, rdb goredis.UniversalClient) error {
	err := rdb.Ping(ctx).Err()
	if err == nil {
		return nil
	}
	where := strings.Join(c.Addrs, ",")
	switch c.Mode {
	case ModeSentinel:
		where = fmt.Sprintf("primary %q through sentinels %s", c.MasterName, where)
	case ModeCluster:
		where = "cluster " + where
	}
	who := "the default user"
	if c.Username != "" {
		who = fmt.Sprintf("user %q", c.Username)
	}
	hint := tlsfiles.Explain(err)
	if hint == "" && c.TLS == nil && errors.Is(err, io.EOF) {
		hint = "the server closed the connection (does it need TLS, redis.tls?)"
	}
	if hint != "" {
		return fmt.Errorf("redis: ping %s as %s: %s: %w", where, who, hint, err)
	}
	return fmt.Errorf("redis: ping %s as %s: %w", where, who, err)
}
