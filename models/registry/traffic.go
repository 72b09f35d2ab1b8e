package registry

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// TrafficMove sets the share of traffic, in percent, that a model's canary gets.
type TrafficMove struct {
	Model string
	// Percent is the canary's share of traffic, 0 to 100.
	Percent int
	// Who sets it (required) and Why, for the audit event.
	Who string
	Why string
	// Details are added to the audit event, e.g. the rollout step behind the change.
	Details map[string]string
}

// Validate checks m without I/O.
func (m TrafficMove) Validate() error {
	if err := checkName("model", m.Model); err != nil {
		return err
	}
	if m.Percent < 0 || m.Percent > 100 {
		return fmt.Errorf("%w: canary traffic %d%% outside [0, 100]", ErrInvalid, m.Percent)
	}
	if m.Who == "" {
		return fmt.Errorf("%w: traffic move without who", ErrInvalid)
	}
	return nil
}

// canaryField is the model hash field that holds the canary percent.
const canaryField = "canary_percent"

// trafficScript sets the canary percent, bumps the alias epoch and appends the audit
// event, unless the percent is already set to that value.
//
//	KEYS: model hash, audit stream
//	ARGV: percent, audit max length,
//	      then the audit event as field/value pairs, to which d.from and d.epoch are appended
//
// Returns {status, epoch}; the epoch is the current one when nothing changed.
var trafficScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {1, 0} end
local raw = redis.call('HGET', KEYS[1], 'canary_percent')
local cur = 0
if raw then
  if not string.match(raw, '^%d+$') then return {5, 0} end
  cur = tonumber(raw)
  if cur > 100 then return {5, 0} end
  if cur == tonumber(ARGV[1]) then
    local e = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
    if e == nil then return {5, 0} end
    return {0, e}
  end
end
redis.call('HSET', KEYS[1], 'canary_percent', ARGV[1])
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
local ev = {}
for i = 3, #ARGV do ev[#ev + 1] = ARGV[i] end
ev[#ev + 1] = 'd.from'
ev[#ev + 1] = tostring(cur)
ev[#ev + 1] = 'd.epoch'
ev[#ev + 1] = tostring(epoch)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ev))
return {0, epoch}
`)

// SetTraffic sets the canary share of m.Model to m.Percent atomically with its audit
// event ("traffic.set", with details from, to and epoch, which take precedence over
// m.Details; from is "0" when the share was never set) and returns the model's new
// alias epoch. The share lives with the aliases: it bumps the same epoch as MoveAlias,
// so Watch delivers it to every instance within the same bound, in AliasSet.
//
// Setting the share it already has writes nothing, appends no audit event and returns
// the current epoch, so a control loop may call it on every tick. It fails with
// ErrNotFound when the model does not exist and ErrCorrupt when the stored share does
// not decode; on any error nothing changed.
func (r *Registry) SetTraffic(ctx context.Context, m TrafficMove) (epoch int64, err error) {
	if err := m.Validate(); err != nil {
		return 0, err
	}
	details := scriptDetails(m.Details, "to", strconv.Itoa(m.Percent))
	ev := Event{Who: m.Who, What: WhatTrafficSet, Model: m.Model, Why: m.Why, When: r.now(), Details: details}
	args := append([]any{m.Percent, r.cfg.AuditMaxLen}, ev.fields()...)
	status, val, err := r.runScript(ctx, trafficScript, []string{r.modelKeys(m.Model).model, r.auditKey()}, args...)
	if err != nil {
		return 0, fmt.Errorf("registry: set traffic of %s: %w", m.Model, err)
	}
	switch status {
	case statusOK:
		return val, nil
	case statusNoModel:
		return 0, fmt.Errorf("%w: model %s", ErrNotFound, m.Model)
	case statusCorrupt:
		return 0, fmt.Errorf("%w: canary traffic or alias epoch of model %s", ErrCorrupt, m.Model)
	}
	return 0, fmt.Errorf("%w: traffic script status %d", ErrCorrupt, status)
}

// parseCanary decodes a stored canary percent: decimal digits, at most 100.
func parseCanary(model, s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil || n > 100 {
		return 0, fmt.Errorf("%w: canary traffic %q of model %s", ErrCorrupt, s, model)
	}
	return int(n), nil
}
