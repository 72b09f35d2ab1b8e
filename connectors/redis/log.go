package redis

import (
	"context"
	"fmt"
	"log/slog"

	goredis "github.com/redis/go-redis/v9"
)

// go-redis writes its own log lines to stderr, one per failed dial of its
// connection pool: during a Redis outage, many a second from every loop
// that retries. The pipeline reports an outage once, through its health
// (pipeline.Health) and its loops' logs; this package, which builds every
// go-redis client of driftline, sends go-redis's lines to slog at debug
// level instead.
func init() { goredis.SetLogger(debugLogger{}) }

// debugLogger is go-redis's logger: slog.Default() at debug level.
type debugLogger struct{}

func (debugLogger) Printf(ctx context.Context, format string, v ...any) {
	if l := slog.Default(); l.Enabled(ctx, slog.LevelDebug) {
		l.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
	}
}
