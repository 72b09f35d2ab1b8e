package registry

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// AnyVersion as AliasMove.Expect makes the move unconditional.
const AnyVersion int64 = -1

// AliasMove points an alias at a version, or removes it, by compare-and-set.
type AliasMove struct {
	Model string
	Alias string
	// Version is the version to point at; 0 removes the alias.
	Version int64
	// Expect is the version the alias must point at now for the move to happen: 0 means
	// "unset", AnyVersion means "whatever it is".
	Expect int64
	// Who moves the alias (required) and Why, for the audit event.
	Who string
	Why string
	// Details are added to the audit event, e.g. the rollout decision behind the move.
	Details map[string]string
}

// Validate checks m without I/O.
func (m AliasMove) Validate() error {
	if err := checkName("model", m.Model); err != nil {
		return err
	}
	if err := checkName("alias", m.Alias); err != nil {
		return err
	}
	if m.Version < 0 || m.Expect < AnyVersion {
		return fmt.Errorf("%w: alias move to %d expecting %d", ErrInvalid, m.Version, m.Expect)
	}
	if m.Who == "" {
		return fmt.Errorf("%w: alias move without who", ErrInvalid)
	}
	return nil
}

// aliasScript moves an alias by compare-and-set, bumps the alias epoch and appends the
// audit event.
//
//	KEYS: model hash, versions, aliases, audit stream
//	ARGV: alias, version (0 removes), expected version (-1 any), audit max length,
//	      then the audit event as field/value pairs, to which d.from and d.epoch are appended
//
// Returns {status, epoch}, or {statusConflict, current version}.
var aliasScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {1, 0} end
local v = tonumber(ARGV[2])
if v > 0 and redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then return {2, 0} end
local cur = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
local expect = tonumber(ARGV[3])
if expect >= 0 and cur ~= expect then return {3, cur} end
if v > 0 then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
elseif cur == 0 then
  return {4, 0}
else
  redis.call('HDEL', KEYS[3], ARGV[1])
end
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
local ev = {}
for i = 5, #ARGV do ev[#ev + 1] = ARGV[i] end
ev[#ev + 1] = 'd.from'
ev[#ev + 1] = tostring(cur)
ev[#ev + 1] = 'd.epoch'
ev[#ev + 1] = tostring(epoch)
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*', unpack(ev))
return {0, epoch}
`)

// scriptDetails is the audit details of a move whose script records "from"
// and "epoch" itself: given without those two, then the key/value pairs
// set, which take precedence.
func scriptDetails(given map[string]string, set ...string) map[string]string {
	out := make(map[string]string, len(given)+len(set)/2)
	for k, v := range given {
		if k != "from" && k != "epoch" {
			out[k] = v
		}
	}
	for i := 0; i+1 < len(set); i += 2 {
		out[set[i]] = set[i+1]
	}
	return out
}

// MoveAlias applies m atomically with its audit event ("alias.set" or "alias.delete",
// with details alias, from, to and epoch, which take precedence over m.Details) and
// returns the model's new alias epoch.
// It fails with ErrConflict when the alias does not point at m.Expect, and with
// ErrNotFound when the model or the target version does not exist, or when removing an
// alias that is not set. On any error nothing changed.
func (r *Registry) MoveAlias(ctx context.Context, m AliasMove) (epoch int64, err error) {
	if err := m.Validate(); err != nil {
		return 0, err
	}
	what := WhatAliasSet
	if m.Version == 0 {
		what = WhatAliasDelete
	}
	details := scriptDetails(m.Details, "alias", m.Alias, "to", strconv.FormatInt(m.Version, 10))
	ev := Event{Who: m.Who, What: what, Model: m.Model, Version: m.Version, Why: m.Why, When: r.now(), Details: details}
	k := r.modelKeys(m.Model)
	args := append([]any{m.Alias, m.Version, m.Expect, r.cfg.AuditMaxLen}, ev.fields()...)
	status, val, err := r.runScript(ctx, aliasScript, []string{k.model, k.versions, k.aliases, r.auditKey()}, args...)
	if err != nil {
		return 0, fmt.Errorf("registry: move alias %s of %s: %w", m.Alias, m.Model, err)
	}
	switch status {
	case statusOK:
		return val, nil
	case statusNoModel:
		return 0, fmt.Errorf("%w: model %s", ErrNotFound, m.Model)
	case statusNoVersion:
		return 0, fmt.Errorf("%w: version %d of model %s", ErrNotFound, m.Version, m.Model)
	case statusConflict:
		return 0, fmt.Errorf("%w: alias %s of model %s points at %d, expected %d", ErrConflict, m.Alias, m.Model, val, m.Expect)
	case statusNoAlias:
		return 0, fmt.Errorf("%w: alias %s of model %s", ErrNotFound, m.Alias, m.Model)
	}
	return 0, fmt.Errorf("%w: alias script status %d", ErrCorrupt, status)
}

// AliasSet is a consistent snapshot of a model's aliases.
type AliasSet struct {
	Model string
	// Epoch counts the alias moves of the model so far; it only grows.
	Epoch int64
	// Versions maps each set alias to its version.
	Versions map[string]int64
	// CanaryPercent is the canary's share of traffic, 0 to 100, as last set by
	// SetTraffic; TrafficSet is false, and CanaryPercent 0, when it was never set.
	CanaryPercent int
	TrafficSet    bool
}

// Aliases returns a consistent snapshot (one MULTI/EXEC) of model's aliases, canary
// traffic share and epoch, or ErrNotFound when the model does not exist.
func (r *Registry) Aliases(ctx context.Context, model string) (AliasSet, error) {
	if err := checkName("model", model); err != nil {
		return AliasSet{}, err
	}
	set, exists, err := r.readAliases(ctx, model)
	if err != nil {
		return AliasSet{}, err
	}
	if !exists {
		return AliasSet{}, fmt.Errorf("%w: model %s", ErrNotFound, model)
	}
	return set, nil
}

// Resolve returns the version that alias of model points at.
func (r *Registry) Resolve(ctx context.Context, model, alias string) (Version, error) {
	if err := checkName("model", model); err != nil {
		return Version{}, err
	}
	n, err := r.rdb.HGet(ctx, r.modelKeys(model).aliases, alias).Int64()
	if errors.Is(err, redis.Nil) {
		return Version{}, fmt.Errorf("%w: alias %s of model %s", ErrNotFound, alias, model)
	}
	if err != nil {
		return Version{}, fmt.Errorf("registry: resolve alias %s of %s: %w", alias, model, err)
	}
	return r.Version(ctx, model, n)
}

// readAliases reads the epoch, canary share and aliases in one transaction; exists is
// false when the model has no versions.
func (r *Registry) readAliases(ctx context.Context, model string) (set AliasSet, exists bool, err error) {
	k := r.modelKeys(model)
	var ex *redis.IntCmd
	var fields *redis.SliceCmd
	var all *redis.MapStringStringCmd
	_, err = r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		ex = p.Exists(ctx, k.model)
		fields = p.HMGet(ctx, k.model, "epoch", canaryField)
		all = p.HGetAll(ctx, k.aliases)
		return nil
	})
	if err != nil {
		return AliasSet{}, false, fmt.Errorf("registry: read aliases of %s: %w", model, err)
	}
	set = AliasSet{Model: model, Versions: make(map[string]int64, len(all.Val()))}
	vals := fields.Val()
	if len(vals) != 2 {
		return AliasSet{}, false, fmt.Errorf("%w: HMGET of model %s returned %d values", ErrCorrupt, model, len(vals))
	}
	if s, ok := vals[0].(string); ok {
		if set.Epoch, err = strconv.ParseInt(s, 10, 64); err != nil {
			return AliasSet{}, false, fmt.Errorf("%w: alias epoch %q of model %s", ErrCorrupt, s, model)
		}
	}
	if s, ok := vals[1].(string); ok {
		if set.CanaryPercent, err = parseCanary(model, s); err != nil {
			return AliasSet{}, false, err
		}
		set.TrafficSet = true
	}
	for a, s := range all.Val() {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return AliasSet{}, false, fmt.Errorf("%w: alias %s of model %s is %q", ErrCorrupt, a, model, s)
		}
		set.Versions[a] = n
	}
	return set, ex.Val() == 1, nil
}
