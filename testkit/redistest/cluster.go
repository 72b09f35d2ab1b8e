package redistest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// Cluster is a Redis Cluster of primaries without replicas, owned by the test that
// started it.
type Cluster struct {
	// Addrs are the nodes' client addresses, 127.0.0.1:port: seed any of them.
	Addrs []string
	// Nodes are the servers, in the order of Addrs; node i serves the i-th equal
	// share of the hash slots.
	Nodes []*Redis
}

// StartCluster starts a Redis Cluster of n primaries (n ≥ 1), each configured by opts,
// assigns each an equal share of the 16384 slots, joins them (CLUSTER MEET) and
// returns once every node reports cluster_state:ok and knows all n. With opts.TLS the
// nodes share one CA (opts.CA, or one made here) and the cluster bus uses TLS too.
func StartCluster(tb testing.TB, opts Options, n int) *Cluster {
	tb.Helper()
	if n < 1 {
		tb.Fatalf("redistest: a cluster needs at least one node, got %d", n)
	}
	opts = withSharedCA(tb, opts)
	c := &Cluster{}
	busPorts := make([]int, n)
	for i := range n {
		node := start(tb, opts, role{name: "redis cluster node " + strconv.Itoa(i), extraPorts: 1, conf: func(ports []int) []string {
			busPorts[i] = ports[1]
			return []string{
				"cluster-enabled yes",
				fmt.Sprintf("cluster-config-file nodes-%d.conf", ports[0]),
				"cluster-port " + strconv.Itoa(ports[1]),
				"cluster-node-timeout 5000",
			}
		}})
		c.Nodes = append(c.Nodes, node)
		c.Addrs = append(c.Addrs, node.Addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for i, node := range c.Nodes {
		cl := node.Client(tb)
		first, last := i*clusterSlots/n, (i+1)*clusterSlots/n-1
		if err := cl.ClusterAddSlotsRange(ctx, first, last).Err(); err != nil {
			tb.Fatalf("redistest: cluster node %s: add slots %d-%d: %v", node.Addr, first, last, err)
		}
		if i > 0 {
			meet := c.Nodes[0].Client(tb)
			if err := meet.Do(ctx, "CLUSTER", "MEET", "127.0.0.1", port(node.Addr), busPorts[i]).Err(); err != nil {
				tb.Fatalf("redistest: cluster meet %s: %v", node.Addr, err)
			}
		}
	}
	for _, node := range c.Nodes {
		cl := node.Client(tb)
		if err := poll(ctx, "cluster node "+node.Addr+" ok", func(ctx context.Context) (bool, error) {
			info, err := cl.ClusterInfo(ctx).Result()
			return strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)+"\r"), err
		}); err != nil {
			tb.Fatalf("redistest: %v\nlog %s:\n%s", err, node.LogPath, tail(node.LogPath))
		}
	}
	return c
}
