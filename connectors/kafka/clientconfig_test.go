package kafka_test

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/tlstest"
)

func TestClientConfigValidate(t *testing.T) {
	pw := pipeline.NewSecret("pw")
	brokers := []string{"b:9092"}
	ok := []kafka.ClientConfig{
		{Brokers: brokers},
		{Brokers: brokers, Compression: kafka.CompressionZstd, ClientID: "x"},
		{Brokers: brokers, TLS: &kafka.TLSConfig{}, SASL: &kafka.SASLConfig{Mechanism: kafka.SASLPlain, Username: "u", Password: pw}},
		{Brokers: brokers, SASL: &kafka.SASLConfig{Mechanism: kafka.SASLOAuthBearer, TokenFile: "/t"}},
		{Brokers: brokers, TLS: &kafka.TLSConfig{CertFile: "c", KeyFile: "k"}},
	}
	for _, c := range ok {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	for want, c := range map[string]kafka.ClientConfig{
		"no brokers":                 {},
		"brokers: empty address":     {Brokers: []string{" "}},
		`unknown codec "brotli"`:     {Brokers: brokers, Compression: "brotli"},
		"sasl.username is required":  {Brokers: brokers, SASL: &kafka.SASLConfig{Mechanism: kafka.SASLScramSHA512, Password: pw}},
		"sasl password is required":  {Brokers: brokers, SASL: &kafka.SASLConfig{Mechanism: kafka.SASLScramSHA256, Username: "u"}},
		"sasl.token_file":            {Brokers: brokers, SASL: &kafka.SASLConfig{Mechanism: kafka.SASLOAuthBearer}},
		`unknown mechanism "GSSAPI"`: {Brokers: brokers, SASL: &kafka.SASLConfig{Mechanism: "GSSAPI"}},
		"go together":                {Brokers: brokers, TLS: &kafka.TLSConfig{KeyFile: "k"}},
	} {
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "kafka: ") {
			t.Errorf("%+v: Validate = %v; want a kafka: error saying %q", c, err, want)
		}
	}
}

func TestNewFranzClientNamesTheUnreadableFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "ca.pem")
	c := kafka.ClientConfig{Brokers: []string{"b:9092"}, TLS: &kafka.TLSConfig{CAFile: missing}}
	if _, err := c.NewFranzClient(); err == nil || !strings.Contains(err.Error(), "tls.ca_file") || !strings.Contains(err.Error(), missing) {
		t.Fatalf("NewFranzClient with a missing CA file = %v; want an error naming tls.ca_file and the path", err)
	}
}

func TestCheckPassesOnKfake(t *testing.T) {
	b := kafkatest.StartKfake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := kafka.Check(ctx, b.ClientConfig("check")); err != nil {
		t.Fatal(err)
	}
}

func TestCheckUnreachableBrokerIsBounded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	err := kafka.Check(ctx, kafka.ClientConfig{Brokers: []string{"127.0.0.1:1", "127.0.0.1:2"}})
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("Check took %s; want it bounded by the context's 2s", took)
	}
	for _, want := range []string{"kafka: cannot reach broker 127.0.0.1:1", "kafka: cannot reach broker 127.0.0.1:2"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check = %v; want it to say %q", err, want)
		}
	}
}

// TestCheckTLSAgainstPlaintextBroker dials a plaintext listener (kfake, which
// waits for the rest of what it takes for a request) with TLS on.
func TestCheckTLSAgainstPlaintextBroker(t *testing.T) {
	b := kafkatest.StartKfake(t)
	ca, err := tlstest.NewCA(t.TempDir(), "ca")
	if err != nil {
		t.Fatal(err)
	}
	c := b.ClientConfig("tls")
	c.TLS = &kafka.TLSConfig{CAFile: ca.CertFile}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err = kafka.Check(ctx, c)
	if err == nil || !strings.Contains(err.Error(), "kafka: no answer from broker "+b.Addr+" in time") || !strings.Contains(err.Error(), "is it a TLS listener?") {
		t.Fatalf("Check with TLS against a plaintext listener = %v; want no answer in time, naming the broker and asking about TLS", err)
	}
}

func TestNewFranzClientAppliesCompression(t *testing.T) {
	b := kafkatest.StartKfake(t)
	b.CreateTopic(t, "codec", 1)
	c := b.ClientConfig("codec")
	c.Compression = kafka.CompressionGzip
	cl, err := c.NewFranzClient(kgo.DefaultProduceTopic("codec"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(strings.Repeat("driftline ", 50))}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var codecs []uint8
	cons := b.Client(t, kgo.ConsumeTopics("codec"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.WithHooks(fetchBatchHook(func(m kgo.FetchBatchMetrics) { codecs = append(codecs, m.CompressionType) })))
	for len(codecs) == 0 && ctx.Err() == nil {
		cons.PollFetches(ctx)
	}
	if len(codecs) != 1 || codecs[0] != 1 {
		t.Fatalf("fetched batches with codecs %v; want one gzip batch (1)", codecs)
	}
}

type fetchBatchHook func(kgo.FetchBatchMetrics)

func (h fetchBatchHook) OnFetchBatchRead(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.FetchBatchMetrics) {
	h(m)
}

// advertiseElsewhere is a listener that accepts on its real port but reports
// another address, so that the broker advertises an address nobody serves.
type advertiseElsewhere struct {
	net.Listener
	fake net.Addr
}

func (l advertiseElsewhere) Addr() net.Addr { return l.fake }

func TestCheckDialsTheAdvertisedBrokers(t *testing.T) {
	var real net.Addr
	unreachable := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	kafkatest.StartKfake(t, kfake.ListenFn(func(network, addr string) (net.Listener, error) {
		ln, err := net.Listen(network, addr)
		if err != nil {
			return nil, err
		}
		real = ln.Addr()
		return advertiseElsewhere{ln, unreachable}, nil
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := kafka.Check(ctx, kafka.ClientConfig{Brokers: []string{real.String()}})
	want := "kafka: cannot reach broker 127.0.0.1:1"
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "advertised by seed "+real.String()+": check the brokers' advertised.listeners") {
		t.Fatalf("Check of a broker that advertises an unreachable address = %v; want it to start %q and point at advertised.listeners", err, want)
	}
}
