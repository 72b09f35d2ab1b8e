// Package registry is driftline's model registry, kept in Redis through go-redis v9.
//
// A model has versions numbered 1, 2, 3… by the registry itself. Each version holds its
// signature, its lineage and up to two artifacts (a learner snapshot and ONNX bytes),
// each stored with its sha256 and checked on every read. Versions are immutable once
// registered. Aliases ("champion", "challenger" or any name the user picks) point at
// versions and move by compare-and-set. Every alias move increments the model's alias
// epoch, which Watch polls so that running instances pick up changes without a restart.
// The canary's share of traffic (SetTraffic) lives with the aliases and bumps the same
// epoch, so instances converge on it the same way.
//
// Besides versions and aliases, the registry keeps two kinds of shared state for the
// control plane: leases (TryLease), so that one instance at a time runs a control loop,
// and online outcome sums per served version (AddOutcomes), summed over all instances,
// for the rollout gate.
//
// Every write that touches more than one key runs as one Lua script, so it is atomic:
// two instances registering or moving aliases at the same time never leave a gap, a
// duplicate version number or an alias that points nowhere. Every registration and every
// alias move appends its audit event to the audit stream inside the same script.
//
// All keys share the hash tag of Config.Prefix, so the scripts also run on Redis Cluster.
package registry

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel errors. Test for them with errors.Is.
var (
	// ErrNotFound: the model, version, alias or artifact does not exist.
	ErrNotFound = errors.New("registry: not found")
	// ErrConflict: a compare-and-set found another value than the one expected.
	ErrConflict = errors.New("registry: conflict")
	// ErrCorrupt: stored bytes do not match their recorded sha256, or metadata does not decode.
	ErrCorrupt = errors.New("registry: corrupt")
	// ErrInvalid: an argument or a Config failed validation.
	ErrInvalid = errors.New("registry: invalid")
)

// Well-known aliases. Any other name that passes ValidName is allowed too.
//
// The champion serves the predictions topic. The canary serves a share of
// the traffic (the "challenger" alias stands in for it when there is no
// canary); the shadow scores every event to the shadow topic and serves
// none. The governor marks a newly promoted champion "baking" until its
// rollout is stable or rolled back, and the champion it replaced
// "previous", so that an instance taking over the governor lease finishes
// the bake; no arm serves either.
const (
	AliasChampion   = "champion"
	AliasChallenger = "challenger"
	AliasCanary     = "canary"
	AliasShadow     = "shadow"
	AliasBaking     = "baking"
	AliasPrevious   = "previous"
)

// Config configures a Registry. The zero value of each field means its default.
type Config struct {
	// Prefix starts every key. It must contain a non-empty Redis Cluster hash tag
	// ("{...}") so that all registry keys live in one slot. Default "{driftline:registry}".
	Prefix string `json:"prefix" yaml:"prefix"`
	// AuditMaxLen caps the audit stream, trimmed approximately (XADD MAXLEN ~), so the
	// stream may hold somewhat more. Default 100000.
	AuditMaxLen int64 `json:"audit_max_len" yaml:"audit_max_len"`
	// WatchInterval is how often Watch polls the alias epoch, between 1 ms and 1 min.
	// Default 1 s.
	WatchInterval time.Duration `json:"watch_interval" yaml:"watch_interval"`
	// Now is the clock for registration times and audit events without a When.
	// Default time.Now.
	Now func() time.Time `json:"-" yaml:"-"`
}

// Defaults used for zero Config fields.
const (
	DefaultPrefix        = "{driftline:registry}"
	DefaultAuditMaxLen   = 100000
	DefaultWatchInterval = time.Second
)

func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.AuditMaxLen == 0 {
		c.AuditMaxLen = DefaultAuditMaxLen
	}
	if c.WatchInterval == 0 {
		c.WatchInterval = DefaultWatchInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports whether c, with defaults applied, is usable.
func (c Config) Validate() error {
	c = c.withDefaults()
	open, end := strings.IndexByte(c.Prefix, '{'), strings.IndexByte(c.Prefix, '}')
	if open < 0 || end < open+2 {
		return fmt.Errorf("%w: prefix %q has no non-empty {hash tag}", ErrInvalid, c.Prefix)
	}
	if c.AuditMaxLen < 1 {
		return fmt.Errorf("%w: audit max length %d < 1", ErrInvalid, c.AuditMaxLen)
	}
	if c.WatchInterval < time.Millisecond || c.WatchInterval > time.Minute {
		return fmt.Errorf("%w: watch interval %s outside [1ms, 1m]", ErrInvalid, c.WatchInterval)
	}
	return nil
}

// Registry reads and writes the model registry. It is safe for concurrent use, and any
// number of Registry values, in any number of processes, may share one Redis.
// The Registry does not own the client: closing the client is the caller's job.
type Registry struct {
	rdb redis.UniversalClient
	cfg Config
}

// New returns a Registry over rdb. It validates cfg and does no I/O.
func New(rdb redis.UniversalClient, cfg Config) (*Registry, error) {
	if rdb == nil {
		return nil, fmt.Errorf("%w: nil redis client", ErrInvalid)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Registry{rdb: rdb, cfg: cfg.withDefaults()}, nil
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidName reports whether s may name a model or an alias: 1 to 128 ASCII letters,
// digits, '.', '_' or '-', starting with a letter or digit.
func ValidName(s string) bool { return namePattern.MatchString(s) }

func checkName(kind, s string) error {
	if !ValidName(s) {
		return fmt.Errorf("%w: %s name %q", ErrInvalid, kind, s)
	}
	return nil
}

// Key layout, all under the prefix P:
//
//	P:models                 set of model names
//	P:m:<model>              hash: seq (last version number), epoch (alias epoch),
//	                         canary_percent (canary traffic share, once set)
//	P:m:<model>:versions     hash: <n> → version metadata (JSON)
//	P:m:<model>:artifacts    hash: <n>/snapshot, <n>/onnx → bytes
//	P:m:<model>:aliases      hash: <alias> → <n>
//	P:m:<model>:outcomes:<v> hash: outcome sums of served version label v (TTL)
//	P:m:<model>:retrains     hash: trigger key → queued retrain trigger (JSON)
//	P:lease:<name>           string: lease holder (TTL)
//	P:lease-epoch:<name>     string: how many times the lease was taken
//	P:audit                  stream of audit events
type keys struct{ model, versions, artifacts, aliases string }

func (r *Registry) modelKeys(model string) keys {
	m := r.cfg.Prefix + ":m:" + model
	return keys{model: m, versions: m + ":versions", artifacts: m + ":artifacts", aliases: m + ":aliases"}
}

func (r *Registry) modelsKey() string { return r.cfg.Prefix + ":models" }
func (r *Registry) auditKey() string  { return r.cfg.Prefix + ":audit" }

func (r *Registry) now() time.Time { return r.cfg.Now().UTC() }

// scriptStatus is the first element each write script returns.
const (
	statusOK = iota
	statusNoModel
	statusNoVersion
	statusConflict
	statusNoAlias
	statusCorrupt
)

// runScript runs s and returns its {status, value} reply.
func (r *Registry) runScript(ctx context.Context, s *redis.Script, keys []string, args ...any) (status, value int64, err error) {
	res, err := s.Run(ctx, r.rdb, keys, args...).Int64Slice()
	if err != nil {
		return 0, 0, err
	}
	if len(res) != 2 {
		return 0, 0, fmt.Errorf("%w: script reply has %d elements, want 2", ErrCorrupt, len(res))
	}
	return res[0], res[1], nil
}
