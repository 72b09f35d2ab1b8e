package stages

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// scriptCall runs one Lua script per call with EVALSHA, like
// redis.Script.Run, but builds the command's arguments in a slice it
// reuses, and passes keys after the first as *string: go-redis boxes each
// argument into an interface, which allocates for a string and not for a
// pointer, and its EvalSha allocates a fresh argument slice per call. The
// first key stays a string, for Redis Cluster's slot routing. A script the
// server does not hold (NOSCRIPT) is sent once with EVAL, as Run does. A
// scriptCall is used by one goroutine at a time.
type scriptCall struct {
	script *redis.Script
	args   []any
}

// run calls the script with keys, then args. keys must stay unchanged
// until it returns.
func (s *scriptCall) run(ctx context.Context, rdb redis.UniversalClient, keys []string, args ...any) *redis.Cmd {
	a := append(s.args[:0], "evalsha", s.script.Hash(), len(keys))
	for i := range keys {
		if i == 0 {
			a = append(a, keys[0])
		} else {
			a = append(a, &keys[i])
		}
	}
	a = append(a, args...)
	cmd := redis.NewCmd(ctx, a...)
	if len(keys) > 0 {
		cmd.SetFirstKeyPos(3)
	}
	_ = rdb.Process(ctx, cmd)
	clear(a) // hold no keys or arguments between calls
	s.args = a[:0]
	if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		return s.script.Eval(ctx, rdb, keys, args...)
	}
	return cmd
}
