package app

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/connectors/redis"
	"github.com/driftline/driftline/testkit/nettest"
)

// The partition loops' retry classifier names the dependency that failed:
// a produce past its delivery timeout whose last error was a refused
// connection (franz-go's error when the brokers are away) is the brokers',
// not Redis's (before Redis's errors were marked, any network error was
// called Redis's, and /readyz blamed Redis for a broker); a refused
// connection of the Redis client is Redis's; an error that waiting does
// not mend is neither.
func TestClassifyFailureNamesTheDependency(t *testing.T) {
	down := nettest.ClosedAddr(t)
	rdb, err := redis.New(redis.Config{Addrs: []string{down}})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	redisDown := rdb.Ping(context.Background()).Err()
	brokersDown := fmt.Errorf("kafka: label feed: write refused labels: %w", fmt.Errorf("%w, last err: %w", kgo.ErrRecordTimeout,
		&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}))
	for _, c := range []struct {
		name        string
		err         error
		dep, reason string
	}{
		{"redis refused", fmt.Errorf("dedupe: %w", redisDown), dependencyRedis, "connection refused"},
		{"brokers away", brokersDown, dependencyKafka, "delivery timeout"},
		{"a bare refused connection", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, dependencyKafka, "connection refused"},
		{"a bug", fmt.Errorf("featurize: unknown field"), "", ""},
	} {
		dep, reason, ok := classifyFailure(c.err)
		if ok != (c.dep != "") || dep != c.dep || reason != c.reason {
			t.Errorf("%s: classifyFailure(%v) = %q, %q, %v; want %q, %q", c.name, c.err, dep, reason, ok, c.dep, c.reason)
		}
	}
}
