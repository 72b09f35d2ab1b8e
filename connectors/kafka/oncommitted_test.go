package kafka_test

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/testkit/kafkatest"
)

// TestOnCommittedReportsEachCommit: Config.OnCommitted hears, after the
// autocommits, each partition's committed offset, and what it last heard
// is what the group committed; it needs at-least-once mode.
func TestOnCommittedReportsEachCommit(t *testing.T) {
	const (
		topic, group = "committed", "committed-group"
		partitions   = 2
		perPart      = 300
	)
	b := kafkatest.StartKfake(t)
	b.CreateTopic(t, topic, partitions)
	produceN(t, b, topic, partitions, perPart, 0)
	var mu sync.Mutex
	heard := map[int32]int64{}
	calls := 0
	c := newConsumer(t, b, group, topic, consumerOpts{batch: 50, inFlight: 2, commitEvery: 100 * time.Millisecond,
		onCommitted: func(got string, p int32, next int64) {
			mu.Lock()
			defer mu.Unlock()
			if got != topic || next < heard[p] {
				t.Errorf("heard %s/%d at %d after %d", got, p, next, heard[p])
			}
			heard[p] = next
			calls++
		}})
	rec := newRecorder("consumer", 50)
	run := start(c, rec.open(nil))
	eventually(t, "every partition's commit heard at its end", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return heard[0] == perPart && heard[1] == perPart
	})
	if err := run.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := committed(t, b, group, topic)
	for p := range int32(partitions) {
		if got[p] != perPart {
			t.Errorf("partition %d: committed %d, heard %d", p, got[p], heard[p])
		}
	}
	t.Logf("%d reports", calls)

	cfg := kafka.Config{Client: b.ClientConfig("x"), Group: group, Topics: []string{topic}, BatchSize: 1, MaxInFlight: 1,
		Registerer: prometheus.NewRegistry(), TransactionalID: "tx", OnCommitted: func(string, int32, int64) {}}
	if err := cfg.Validate(); err == nil {
		t.Error("Validate accepted OnCommitted with a transactional id")
	}
}
