//go:build integration

package kafkatest

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestRealKafkaRoundTrip(t *testing.T) {
	b := StartKafka(t)
	if b.Fake != nil {
		t.Fatal("StartKafka returned a kfake cluster")
	}
	if _, err := os.Stat(b.LogPath); err != nil {
		t.Fatalf("broker log: %v", err)
	}
	roundTrip(t, b)
}

func TestRealKafkaSASLSSLRoundTrip(t *testing.T) {
	b := StartSASLSSL(t, SASLSSLOptions{Users: []User{{Name: "alice", Password: "alice-secret"}}})
	if b.SASLSSL == nil || b.SASLSSL.Username != "alice" || b.SASLSSL.CAFile == "" {
		t.Fatalf("SASLSSL = %+v; want alice and a CA file", b.SASLSSL)
	}
	roundTrip(t, b) // through testkit's own client: TLS and SCRAM-SHA-512
}

// TestRealKafkaStopStartKeepsData: a broker stopped (or killed) and
// started again is on the same address with its topics and records, in
// one process with its controller or beside a controller of its own.
func TestRealKafkaStopStartKeepsData(t *testing.T) {
	for _, c := range []struct {
		name  string
		start func(testing.TB) *Broker
	}{{"combined", StartKafka}, {"own_controller", StartKafkaWithController}} {
		t.Run(c.name, func(t *testing.T) { testStopStartKeepsData(t, c.start(t)) })
	}
}

func testStopStartKeepsData(t *testing.T, b *Broker) {
	roundTrip(t, b)
	b.Stop(t)
	start := time.Now()
	b.Start(t)
	t.Logf("broker back in %s", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.Client(t).ProduceSync(ctx, &kgo.Record{Topic: "roundtrip", Key: []byte("k2")}).FirstErr(); err != nil {
		t.Fatalf("produce after the restart: %v", err)
	}
	cons := b.Client(t, kgo.ConsumeTopics("roundtrip"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var keys []string
	for len(keys) < 2 {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %v after the restart, want k1 and k2", keys)
		}
		fs.EachRecord(func(r *kgo.Record) { keys = append(keys, string(r.Key)) })
	}
	slices.Sort(keys) // the topic has 3 partitions: no order between them
	if len(keys) != 2 || keys[0] != "k1" || keys[1] != "k2" {
		t.Fatalf("consumed %v after the restart, want k1 and k2", keys)
	}
	// A crash (Kill) keeps what was acknowledged too.
	b.Kill(t)
	b.Start(t)
	if err := b.Client(t).ProduceSync(ctx, &kgo.Record{Topic: "roundtrip", Key: []byte("k3")}).FirstErr(); err != nil {
		t.Fatalf("produce after a kill: %v", err)
	}
	for len(keys) < 3 {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %v after a kill, want k1, k2, k3", keys)
		}
		fs.EachRecord(func(r *kgo.Record) { keys = append(keys, string(r.Key)) })
	}
}
