package redistest

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// CommandStat is one command's line of a redis-server's INFO
// commandstats: how many times it ran and the server's time in it.
type CommandStat struct {
	Calls int64
	Usec  int64
}

// CommandStats reads the INFO commandstats of rdb's server, by command
// name in lower case ("evalsha", "hset"; a script's calls count under
// their own names as well as in its EVALSHA's time). The INFO call itself
// is counted in "info". It fails tb on an error or an unreadable line.
// miniredis keeps no such statistics: ask a redis-server.
func CommandStats(tb testing.TB, rdb redis.UniversalClient) map[string]CommandStat {
	tb.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		tb.Fatalf("redistest: INFO commandstats: %v", err)
	}
	stats := map[string]CommandStat{}
	for _, line := range strings.Split(info, "\n") {
		name, fields, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		var s CommandStat
		for _, kv := range strings.Split(fields, ",") {
			k, v, _ := strings.Cut(kv, "=")
			var err error
			switch k {
			case "calls":
				s.Calls, err = strconv.ParseInt(v, 10, 64)
			case "usec":
				s.Usec, err = strconv.ParseInt(v, 10, 64)
			}
			if err != nil {
				tb.Fatalf("redistest: commandstats line %q: %v", line, err)
			}
		}
		stats[strings.TrimPrefix(name, "cmdstat_")] = s
	}
	return stats
}
