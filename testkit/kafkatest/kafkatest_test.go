package kafkatest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// roundTrip produces one record to a fresh topic on b and consumes it back.
func roundTrip(t *testing.T, b *Broker) {
	t.Helper()
	b.CreateTopic(t, "roundtrip", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	prod := b.Client(t, kgo.DefaultProduceTopic("roundtrip"))
	want := &kgo.Record{Key: []byte("k1"), Value: []byte(`{"event_id":"e-1"}`)}
	if err := prod.ProduceSync(ctx, want).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	cons := b.Client(t, kgo.ConsumeTopics("roundtrip"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("no record consumed: %v", err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		var got []*kgo.Record
		fs.EachRecord(func(r *kgo.Record) { got = append(got, r) })
		if len(got) == 0 {
			continue
		}
		if len(got) != 1 || string(got[0].Key) != "k1" || string(got[0].Value) != string(want.Value) {
			t.Fatalf("consumed %d records, first key %q value %q; want one record k1 %s", len(got), got[0].Key, got[0].Value, want.Value)
		}
		if got[0].Partition != want.Partition || got[0].Offset != 0 {
			t.Fatalf("consumed from partition %d offset %d, produced to partition %d offset 0", got[0].Partition, got[0].Offset, want.Partition)
		}
		return
	}
}

func TestKfakeRoundTrip(t *testing.T) {
	b := StartKfake(t)
	if b.Fake == nil || b.LogPath != "" {
		t.Fatalf("kfake broker: Fake=%v LogPath=%q; want a cluster and no log", b.Fake, b.LogPath)
	}
	roundTrip(t, b)
}

func TestKfakeCreateTopicTwiceFails(t *testing.T) {
	b := StartKfake(t)
	b.CreateTopic(t, "dup", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := createTopic(ctx, b.admin, "dup", 1); err == nil {
		t.Fatal("second create of topic dup succeeded; want an error")
	}
}

func TestLibsDirNamesSetupScript(t *testing.T) {
	t.Setenv("DRIFTLINE_KAFKA_LIBS", t.TempDir())
	_, err := LibsDir()
	if err == nil {
		t.Fatal("LibsDir on an empty folder succeeded; want an error")
	}
	if got := err.Error(); !strings.Contains(got, "scripts/setup-kafka.sh") {
		t.Fatalf("LibsDir error %q does not name scripts/setup-kafka.sh", got)
	}
}

func TestClusterIDIsKafkaUUID(t *testing.T) {
	for range 1000 {
		id := clusterID()
		if len(id) != 22 || id[0] == '-' || id == "AAAAAAAAAAAAAAAAAAAAAA" {
			t.Fatalf("cluster id %q is not a usable 22-character Kafka uuid", id)
		}
	}
}
