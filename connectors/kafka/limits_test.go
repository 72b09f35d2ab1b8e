package kafka_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/kafkatest"
)

// TestLearnRecordLimits: a topic's max.message.bytes becomes its record
// limit, which also bounds the client's produce batches; a topic whose
// config can't be read takes the broker's message.max.bytes. A record
// that fits the learned limit is produced, even past franz-go's default
// batch bound of 1,000,012 bytes.
func TestLearnRecordLimits(t *testing.T) {
	b := kafkatest.StartKfake(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	adm := kadm.NewClient(b.Client(t))
	small := "1000"
	for topic, cfg := range map[string]map[string]*string{
		"dlq-small": {"max.message.bytes": &small},
		"dlq-big":   {"max.message.bytes": kadm.StringPtr("2000000")},
	} {
		resp, err := adm.CreateTopic(ctx, 1, 1, cfg, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	c, err := kafka.New(kafka.Config{Client: b.ClientConfig("limits")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := c.LearnRecordLimits(ctx, "not-yet", "dlq-small", "dlq-big")
	want := map[string]int{"dlq-small": 1000, "dlq-big": 2_000_000, "not-yet": kafka.DefaultMaxMessageBytes}
	for topic, w := range want {
		if got[topic] != w || c.MaxRecordBytes(topic) != w {
			t.Errorf("%s: learned %d, MaxRecordBytes %d, want %d", topic, got[topic], c.MaxRecordBytes(topic), w)
		}
	}
	if n := c.MaxRecordBytes("never-asked"); n != 1_000_012 {
		t.Errorf("a topic never learned: %d, want franz-go's default batch bound", n)
	}
	big := pipeline.OutRecord{Topic: "dlq-big", Value: bytes.Repeat([]byte("v"), 1_500_000)}
	if err := c.Write(ctx, []pipeline.OutRecord{big}); err != nil {
		t.Errorf("a 1.5 MB record to a topic that takes 2 MB: %v", err)
	}
}

// TestInputHeadersReachHandlers: the consumer hands each message its
// record's headers.
func TestInputHeadersReachHandlers(t *testing.T) {
	b := kafkatest.StartKfake(t)
	b.CreateTopic(t, "in", 1)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	tp := []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	if err := b.Client(t).ProduceSync(ctx, &kgo.Record{Topic: "in", Value: []byte("v"),
		Headers: []kgo.RecordHeader{{Key: "traceparent", Value: tp}, {Key: "x", Value: []byte("y")}}}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	c := newConsumer(t, b, "headers", "in", consumerOpts{batch: 10, inFlight: 1})
	got := make(chan []pipeline.Header, 1)
	r := start(c, func(string, int32) (pipeline.PartitionHandler, error) {
		return handlerFunc(func(msgs []pipeline.Message) {
			select {
			case got <- append([]pipeline.Header(nil), msgs[0].Headers...):
			default:
			}
		}), nil
	})
	var hs []pipeline.Header
	select {
	case hs = <-got:
	case <-ctx.Done():
		t.Fatal("no message")
	}
	_ = r.stop(t)
	if len(hs) != 2 || hs[0].Key != "traceparent" || !bytes.Equal(hs[0].Value, tp) || hs[1].Key != "x" {
		t.Errorf("headers %v", hs)
	}
}

// handlerFunc is a PartitionHandler that calls f with each batch.
type handlerFunc func(msgs []pipeline.Message)

func (f handlerFunc) Handle(_ context.Context, msgs []pipeline.Message) error {
	f(msgs)
	return nil
}

func (handlerFunc) Close() {}
