package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// tryLeaseScript takes or renews a lease. Taking a free lease increments
// its epoch, so that each holding of a lease has a number of its own,
// larger than every earlier holding's: a fencing token.
//
//	KEYS: lease key, epoch key
//	ARGV: holder, ttl in milliseconds
//
// Returns the epoch when holder holds the lease afterwards, else 0.
var tryLeaseScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
local epoch
if cur then
  epoch = tonumber(redis.call('GET', KEYS[2]) or '0')
  if epoch == 0 then epoch = redis.call('INCR', KEYS[2]) end
else
  epoch = redis.call('INCR', KEYS[2])
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return epoch
`)

// releaseLeaseScript deletes a lease if holder holds it.
//
//	KEYS: lease key
//	ARGV: holder
var releaseLeaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

func (r *Registry) leaseKey(name string) string { return r.cfg.Prefix + ":lease:" + name }

// leaseEpochKey holds the number of times the lease called name was taken.
func (r *Registry) leaseEpochKey(name string) string { return r.cfg.Prefix + ":lease-epoch:" + name }

func checkLease(name, holder string) error {
	if err := checkName("lease", name); err != nil {
		return err
	}
	if holder == "" {
		return fmt.Errorf("%w: lease %s without holder", ErrInvalid, name)
	}
	return nil
}

// TryLease takes the lease called name for holder, or renews it when holder already
// holds it, for ttl (at least 1 ms; truncated to whole milliseconds), and reports
// whether holder holds it now. It returns false, and no error, while another holder's
// lease runs.
//
// Holders must be unique per instance (e.g. host and process id). A lease is exclusive
// only while the holder renews it well before ttl runs out; a holder that cannot renew
// (a failed or late call) must stop acting as the leader when its last successful
// TryLease is ttl old, measured from before that call was sent.
func (r *Registry) TryLease(ctx context.Context, name, holder string, ttl time.Duration) (held bool, err error) {
	epoch, err := r.TryLeaseEpoch(ctx, name, holder, ttl)
	return epoch > 0, err
}

// TryLeaseEpoch is TryLease that also returns the lease's epoch while holder holds it
// (0 when it does not): a number that grows each time the lease is taken by a holder
// that did not hold it, and stays the same while that holder renews it. A holder
// stamps what it writes under the lease with the epoch, so that readers can tell a
// later holder's writes from an earlier one's (a fencing token).
func (r *Registry) TryLeaseEpoch(ctx context.Context, name, holder string, ttl time.Duration) (epoch int64, err error) {
	if err := checkLease(name, holder); err != nil {
		return 0, err
	}
	if ttl < time.Millisecond {
		return 0, fmt.Errorf("%w: lease %s ttl %s < 1ms", ErrInvalid, name, ttl)
	}
	n, err := tryLeaseScript.Run(ctx, r.rdb, []string{r.leaseKey(name), r.leaseEpochKey(name)}, holder, ttl.Milliseconds()).Int64()
	if err != nil {
		return 0, fmt.Errorf("registry: try lease %s: %w", name, err)
	}
	return n, nil
}

// ReleaseLease ends holder's lease called name, so another holder may take it at once.
// It does nothing, and returns no error, when holder does not hold the lease (it ran
// out, or another holder has it), so it is safe to call on every shutdown.
func (r *Registry) ReleaseLease(ctx context.Context, name, holder string) error {
	if err := checkLease(name, holder); err != nil {
		return err
	}
	if err := releaseLeaseScript.Run(ctx, r.rdb, []string{r.leaseKey(name)}, holder).Err(); err != nil {
		return fmt.Errorf("registry: release lease %s: %w", name, err)
	}
	return nil
}

// LeaseHolder returns the holder of the lease called name, or "" when it is free.
func (r *Registry) LeaseHolder(ctx context.Context, name string) (string, error) {
	if err := checkName("lease", name); err != nil {
		return "", err
	}
	h, err := r.rdb.Get(ctx, r.leaseKey(name)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("registry: read lease %s: %w", name, err)
	}
	return h, nil
}
