package redis

import (
	"context"
	"errors"

	goredis "github.com/redis/go-redis/v9"
)

// Cursors keeps named cursors (a string per key) in Redis, without expiry:
// the audit forwarder's position in the audit stream, for one.
type Cursors struct {
	Client goredis.UniversalClient
}

// Get returns the cursor under key, or "" when it is unset.
func (c Cursors) Get(ctx context.Context, key string) (string, error) {
	v, err := c.Client.Get(ctx, key).Result()
	if errors.Is(err, goredis.Nil) {
		return "", nil
	}
	return v, err
}

// Set stores value under key.
func (c Cursors) Set(ctx context.Context, key, value string) error {
	return c.Client.Set(ctx, key, value, 0).Err()
}
