package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/driftline/driftline/models/adminapi"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/pipeline"
)

// Embedded is the demo's infrastructure in this process: kfake, an
// in-process Kafka on a loopback port that external clients such as kcat
// can reach, with every topic of the spec, and miniredis. Housekeep keeps
// what they hold bounded; its methods are safe for concurrent use.
type Embedded struct {
	// Brokers are kfake's addresses; RedisAddr is miniredis's.
	Brokers   []string
	RedisAddr string

	cluster  *kfake.Cluster
	redis    *miniredis.Miniredis
	versions keyVersions
	bounded  bool

	mu sync.Mutex
	// clock is how far miniredis's TTLs have been moved on (Housekeep).
	clock time.Time
}

// EmbeddedConfig says how StartEmbedded starts kfake.
type EmbeddedConfig struct {
	// Port is kfake's loopback port (0: a free one).
	Port int
	// Partitions is each topic's partition count (default 1).
	Partitions int
	// RetainBytes, when set, bounds the bytes kfake keeps of all the
	// topics together: each partition keeps about RetainBytes divided by
	// the number of partitions (at least MinRetainPerPartition), in
	// segments of a quarter of that, its oldest segments dropped by
	// Housekeep. Zero keeps every record: a run that reads its outputs back
	// needs them all.
	RetainBytes int64
}

// MinRetainPerPartition is the least a partition keeps with
// EmbeddedConfig.RetainBytes: more than a producer batch (1 MiB) and a
// bounded backlog's share.
const MinRetainPerPartition = 4 << 20

// DemoRetainBytes is what `driftline demo` keeps of its topics when it runs
// until stopped: enough for the backlog its producer is held to, and for
// kcat to read the recent records.
const DemoRetainBytes = 64 << 20

// DemoEmbedded is the demo's EmbeddedConfig: kfake keeps DemoRetainBytes
// when the demo runs until stopped (it reads nothing back then), every
// record when it is bounded (it reads its outputs back).
func DemoEmbedded(port, partitions int, unbounded bool) EmbeddedConfig {
	c := EmbeddedConfig{Port: port, Partitions: partitions}
	if unbounded {
		c.RetainBytes = DemoRetainBytes
	}
	return c
}

// DemoMaxBacklog is how far the demo's producer may be ahead of the
// pipeline (Taken): 8 batches, on the input or the labels topic.
func DemoMaxBacklog(spec *pipeline.Spec) int64 { return 8 * int64(spec.Batch.Size) }

// DemoCheckEvery is how often the demo checks whether every event and
// label is accounted for: a bounded run's end, and so its events/s, is
// known to within it (its progress line is still once a second).
const DemoCheckEvery = 100 * time.Millisecond

// InterruptStopBudget bounds how long an interrupted demo waits for its
// planes to finish their in-flight batches: the embedded Kafka and Redis
// end with the process, so there is nothing to commit that outlives it.
const InterruptStopBudget = 1500 * time.Millisecond

// ErrStillDraining reports planes that did not stop within the budget.
var ErrStillDraining = errors.New("still draining")

// WaitPlanes waits for the planes to return after their context ended:
// fully at the end of a bounded run, at most InterruptStopBudget when
// interrupted (Ctrl-C stops the demo within 2 s; a label batch on
// miniredis can take seconds to finish).
func WaitPlanes(planeErr <-chan error, interrupted bool) error {
	var budget <-chan time.Time
	if interrupted {
		budget = time.After(InterruptStopBudget)
	}
	select {
	case err := <-planeErr:
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("pipeline stop: %w", err)
		}
		return nil
	case <-budget:
		return ErrStillDraining
	}
}

// DemoParkedGrace is how long a bounded demo waits for parked labels once
// every event and label was processed, before it reports them.
const DemoParkedGrace = 3 * time.Second

// DemoRolloutGrace is how long a bounded demo waits, once every event and
// label is accounted for, for a rollout still in progress to take its
// decision on the run's last outcomes: the governor decides on its watch
// ticks (rollout.watch_interval), so outcomes counted just before the end
// are judged up to a tick later.
const DemoRolloutGrace = 2 * time.Second

// RolloutInProgress reports whether model has a version under the shadow,
// canary or baking alias: a rollout the governor has not finished (stable)
// or rolled back. A model the registry does not hold has none.
func RolloutInProgress(ctx context.Context, reg *registry.Registry, model string) (bool, error) {
	set, err := reg.Aliases(ctx, model)
	if errors.Is(err, registry.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, a := range []string{registry.AliasShadow, registry.AliasCanary, registry.AliasBaking} {
		if set.Versions[a] != 0 {
			return true, nil
		}
	}
	return false, nil
}

// Taken is how many input rows the pipeline has taken (predicted, sent to
// the DLQ or dropped as duplicates) and how many label records it has
// processed: what a producer holds its backlog against (feed.Config.Taken).
// It is safe for concurrent use.
func (a *App) Taken() (rows, labels int64) {
	t := a.Totals()
	if a.labels != nil {
		labels = a.labels.join.Processed()
	}
	return t.Out + t.DLQ + t.Duplicates, labels
}

// StartEmbedded starts kfake with the spec's topics and miniredis, and
// points the spec's kafka.brokers and redis.addr at them (and sets
// redis.timeout when unset: EmbeddedRedisTimeout).
func StartEmbedded(spec *pipeline.Spec, cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.Partitions == 0 {
		cfg.Partitions = 1
	}
	if cfg.Port < 0 || cfg.Partitions < 0 || cfg.RetainBytes < 0 {
		return nil, fmt.Errorf("embedded: port, partitions and retain bytes must not be negative, got %d, %d and %d", cfg.Port, cfg.Partitions, cfg.RetainBytes)
	}
	port := cfg.Port
	if port == 0 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	topics := Topics(spec)
	opts := []kfake.Opt{
		kfake.Ports(port),
		kfake.SeedTopics(int32(cfg.Partitions), topics...),
		kfake.GroupMinSessionTimeout(time.Second),
	}
	if cfg.RetainBytes > 0 {
		perPartition := max(cfg.RetainBytes/int64(len(topics)*cfg.Partitions), MinRetainPerPartition)
		// kfake frees a segment once retention passed all of it: segments
		// of a quarter of the retention keep the excess small.
		segment := max(perPartition/4, 1<<20)
		opts = append(opts, kfake.BrokerConfigs(map[string]string{
			"log.retention.bytes": strconv.FormatInt(perPartition, 10),
			"log.segment.bytes":   strconv.FormatInt(segment, 10),
		}))
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka on 127.0.0.1:%d: %w", port, err)
	}
	mr, err := miniredis.Run()
	if err != nil {
		cluster.Close()
		return nil, fmt.Errorf("start miniredis: %w", err)
	}
	e := &Embedded{Brokers: cluster.ListenAddrs(), RedisAddr: mr.Addr(), cluster: cluster, redis: mr, versions: newKeyVersions(mr, spec.Redis.DB),
		bounded: cfg.RetainBytes > 0, clock: time.Now()}
	spec.Kafka.Brokers, spec.Redis.Addr = e.Brokers, e.RedisAddr
	if spec.Redis.Timeout == 0 {
		spec.Redis.Timeout = pipeline.Duration(EmbeddedRedisTimeout)
	}
	return e, nil
}

// EmbeddedRedisTimeout is the Redis timeout StartEmbedded sets when the
// spec has none. miniredis runs in this process: a call is slow on a busy
// machine (a batch of label-join scripts), never lost. A call that times
// out after Redis ran it is sent again, and the label join's scripts are
// not idempotent: a label batch run twice lost its labels (parked, their
// predictions taken by the first run), which hung the demo with the 2s
// default under load.
const EmbeddedRedisTimeout = 30 * time.Second

// redisClockStep is how much wall time Housekeep lets pass before it moves
// miniredis's TTLs on: each move walks (and sorts) every key.
const redisClockStep = 5 * time.Second

// Housekeep bounds what the embedded servers hold; call it about once a
// second. It drops kfake's oldest records past EmbeddedConfig.RetainBytes,
// and expires miniredis's keys: miniredis counts TTLs down only when told,
// so Housekeep moves them on by the wall time passed (every
// redisClockStep), as a real Redis would have, then drops what miniredis
// remembers of the keys gone (keyVersions).
func (e *Embedded) Housekeep() {
	if e.bounded {
		e.cluster.ApplyRetention()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if d := time.Since(e.clock); d >= redisClockStep {
		e.redis.FastForward(d)
		e.clock = e.clock.Add(d)
		e.versions.prune()
	}
}

// Close stops both.
func (e *Embedded) Close() {
	e.redis.Close()
	e.cluster.Close()
}

// DemoAdminToken is the demo's bootstrap admin token: $DRIFTLINE_ADMIN_TOKEN,
// or a random one for this run.
func DemoAdminToken() (string, error) {
	if t := os.Getenv(adminapi.EnvAdminToken); t != "" {
		return t, nil
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "dl_demo_" + hex.EncodeToString(b), nil
}
