package app

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/driftline/driftline/models/adminapi"
	"github.com/driftline/driftline/pipeline"
)

// Embedded is the demo's infrastructure in this process: kfake, an
// in-process Kafka on a loopback port that external clients such as kcat
// can reach, with every topic of the spec, and miniredis.
type Embedded struct {
	// Brokers are kfake's addresses; RedisAddr is miniredis's.
	Brokers   []string
	RedisAddr string

	cluster *kfake.Cluster
	redis   *miniredis.Miniredis
}

// StartEmbedded starts kfake on port (0: a free one) with the spec's
// topics of partitions partitions each, and miniredis, and points the
// spec's kafka.brokers and redis.addr at them. kfake keeps at most 128 MiB
// per partition (log.retention.bytes, applied by ApplyRetention).
func StartEmbedded(spec *pipeline.Spec, port, partitions int) (*Embedded, error) {
	if port == 0 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	cluster, err := kfake.NewCluster(
		kfake.Ports(port),
		kfake.SeedTopics(int32(partitions), Topics(spec)...),
		kfake.GroupMinSessionTimeout(time.Second),
		kfake.BrokerConfigs(map[string]string{"log.retention.bytes": strconv.Itoa(128 << 20)}),
	)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka on 127.0.0.1:%d: %w", port, err)
	}
	mr, err := miniredis.Run()
	if err != nil {
		cluster.Close()
		return nil, fmt.Errorf("start miniredis: %w", err)
	}
	e := &Embedded{Brokers: cluster.ListenAddrs(), RedisAddr: mr.Addr(), cluster: cluster, redis: mr}
	spec.Kafka.Brokers, spec.Redis.Addr = e.Brokers, e.RedisAddr
	return e, nil
}

// ApplyRetention drops kfake's records past its retention bytes.
func (e *Embedded) ApplyRetention() { e.cluster.ApplyRetention() }

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
