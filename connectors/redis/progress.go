package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// LearnerProgress shares a learner-state writer's live learned counts
// (labels learned per model version) with the other instances, for their
// staleness gauge: one hash per model under Prefix + model, which expires
// after TTL without an update (a dead writer's counts do not linger).
type LearnerProgress struct {
	Client goredis.UniversalClient
	// Prefix starts each model's key (e.g. the spec's key prefix +
	// "learner-progress:").
	Prefix string
	// TTL is how long a model's counts outlive their last update
	// (default 1m).
	TTL time.Duration
}

// SetProgress records the labels each version of model has learned.
func (p LearnerProgress) SetProgress(ctx context.Context, model string, learned map[string]int64) error {
	if len(learned) == 0 {
		return nil
	}
	key := p.Prefix + model
	ttl := p.TTL
	if ttl == 0 {
		ttl = time.Minute
	}
	fields := make([]any, 0, 2*len(learned))
	for v, n := range learned {
		fields = append(fields, v, n)
	}
	pipe := p.Client.Pipeline()
	pipe.Del(ctx, key)
	pipe.HSet(ctx, key, fields...)
	pipe.PExpire(ctx, key, ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redis: learner progress of %s: %w", model, err)
	}
	return nil
}

// Progress returns what SetProgress recorded last for model (empty when
// nothing, or when it expired).
func (p LearnerProgress) Progress(ctx context.Context, model string) (map[string]int64, error) {
	raw, err := p.Client.HGetAll(ctx, p.Prefix+model).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: learner progress of %s: %w", model, err)
	}
	out := make(map[string]int64, len(raw))
	for v, s := range raw {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("redis: learner progress of %s version %s: %q is not a count", model, v, s)
		}
		out[v] = n
	}
	return out, nil
}
