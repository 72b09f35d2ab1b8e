//go:build integration

package kafka_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/tlstest"
)

// The SASL_SSL tests share one broker (kafkatest.SharedSASLSSL): TLS with a CA made
// for it, SCRAM users created at format time.

func TestMain(m *testing.M) { os.Exit(kafkatest.Main(m)) }

// failFast bounds how long a check with wrong settings may take: it must fail at
// once, not wait out DefaultCheckTimeout or retry in the background.
const failFast = 5 * time.Second

func TestSASLSSLOrderBatchesLagAndCommit(t *testing.T) {
	testOrderAndCommit(t, kafkatest.SharedSASLSSL(t))
}

func TestSASLSSLExactlyOnceCommitsOutputsWithOffsets(t *testing.T) {
	testExactlyOnceCommitsTogether(t, kafkatest.SharedSASLSSL(t))
}

func TestSASLSSLCheckPassesForEveryMechanism(t *testing.T) {
	b := kafkatest.SharedSASLSSL(t)
	s := b.SASLSSL
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(kafkatest.UnsecuredToken(t, s.Username, time.Hour)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, sa := range []kafka.SASLConfig{
		{Mechanism: kafka.SASLScramSHA512, Username: s.Username, Password: pipeline.NewSecret(s.Password)},
		{Mechanism: kafka.SASLScramSHA256, Username: s.Username, Password: pipeline.NewSecret(s.Password)},
		{Mechanism: kafka.SASLPlain, Username: s.Username, Password: pipeline.NewSecret(s.Password)},
		{Mechanism: kafka.SASLOAuthBearer, TokenFile: tokenFile},
	} {
		t.Run(sa.Mechanism, func(t *testing.T) {
			c := kafka.ClientConfig{Brokers: []string{b.Addr}, TLS: &kafka.TLSConfig{CAFile: s.CAFile}, SASL: &sa}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := kafka.Check(ctx, c); err != nil {
				t.Fatalf("Check: %v", err)
			}
		})
	}
}

// TestSASLSSLTokenFileIsReadAtEachAuthentication replaces the token file between two
// checks: the second authentication reads the new, broken token and fails.
func TestSASLSSLTokenFileIsReadAtEachAuthentication(t *testing.T) {
	b := kafkatest.SharedSASLSSL(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(kafkatest.UnsecuredToken(t, "svc", time.Hour)), 0o600); err != nil {
		t.Fatal(err)
	}
	c := kafka.ClientConfig{Brokers: []string{b.Addr}, TLS: &kafka.TLSConfig{CAFile: b.SASLSSL.CAFile},
		SASL: &kafka.SASLConfig{Mechanism: kafka.SASLOAuthBearer, TokenFile: tokenFile}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafka.Check(ctx, c); err != nil {
		t.Fatalf("Check with a valid token: %v", err)
	}
	if err := os.WriteFile(tokenFile, []byte("not-a-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := kafka.Check(ctx, c)
	if err == nil || !strings.Contains(err.Error(), "SASL OAUTHBEARER authentication with the token in "+tokenFile+" failed at broker "+b.Addr) {
		t.Fatalf("Check with a broken token = %v; want a SASL OAUTHBEARER failure naming the token file and the broker", err)
	}
	if err := os.WriteFile(tokenFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = kafka.Check(ctx, c)
	if want := "kafka: SASL OAUTHBEARER token for broker " + b.Addr + ": sasl.token_file " + tokenFile + " is empty"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Check with an empty token file = %v; want it to start %q", err, want)
	}
}

func TestSASLSSLWrongPasswordFailsFastAndNamesMechanismUserBroker(t *testing.T) {
	b := kafkatest.SharedSASLSSL(t)
	s := b.SASLSSL
	const wrong = "wrong-password-7f3a"
	for _, mech := range []string{kafka.SASLScramSHA512, kafka.SASLScramSHA256, kafka.SASLPlain} {
		t.Run(mech, func(t *testing.T) {
			c := kafka.ClientConfig{Brokers: []string{b.Addr}, TLS: &kafka.TLSConfig{CAFile: s.CAFile},
				SASL: &kafka.SASLConfig{Mechanism: mech, Username: s.Username, Password: pipeline.NewSecret(wrong)}}
			start := time.Now()
			err := kafka.Check(context.Background(), c)
			took := time.Since(start)
			if err == nil {
				t.Fatal("Check with a wrong password passed")
			}
			t.Logf("took %s: %v", took.Round(time.Millisecond), err)
			if took > failFast {
				t.Errorf("Check took %s; want a failure within %s", took, failFast)
			}
			want := fmt.Sprintf("kafka: SASL %s authentication as %q failed at broker %s: ", mech, s.Username, b.Addr)
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q; want it to start %q", err, want)
			}
			if !errors.Is(err, kerr.SaslAuthenticationFailed) {
				t.Errorf("error %v does not wrap kerr.SaslAuthenticationFailed", err)
			}
			if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), s.Password) {
				t.Errorf("error %q holds a password", err)
			}
		})
	}
}

func TestSASLSSLUnknownCAFailsAsTLSVerification(t *testing.T) {
	b := kafkatest.SharedSASLSSL(t)
	other, err := tlstest.NewCA(t.TempDir(), "other")
	if err != nil {
		t.Fatal(err)
	}
	c := b.ClientConfig("unknown-ca")
	c.TLS = &kafka.TLSConfig{CAFile: other.CertFile}
	start := time.Now()
	err = kafka.Check(context.Background(), c)
	if took := time.Since(start); took > failFast {
		t.Errorf("Check took %s; want a failure within %s", took, failFast)
	}
	want := "kafka: broker " + b.Addr + ": TLS verification of the server's certificate failed"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Check trusting another CA = %v; want an error starting %q", err, want)
	}
}

func TestSASLSSLWrongServerNameFailsAsTLSVerification(t *testing.T) {
	b := kafkatest.SharedSASLSSL(t)
	c := b.ClientConfig("wrong-name")
	c.TLS.ServerName = "kafka.example.com"
	err := kafka.Check(context.Background(), c)
	if err == nil || !strings.Contains(err.Error(), "TLS verification of the server's certificate failed") {
		t.Fatalf("Check with a server name the certificate lacks = %v; want a TLS verification failure", err)
	}
}

func TestSASLSSLPlaintextClientFailsWithinTimeout(t *testing.T) {
	b := kafkatest.SharedSASLSSL(t)
	c := b.ClientConfig("plaintext")
	c.TLS = nil
	start := time.Now()
	err := kafka.Check(context.Background(), c)
	took := time.Since(start)
	t.Logf("took %s: %v", took.Round(time.Millisecond), err)
	if took > kafka.DefaultCheckTimeout+2*time.Second {
		t.Errorf("Check took %s; want it bounded by DefaultCheckTimeout %s", took, kafka.DefaultCheckTimeout)
	}
	if err == nil || !strings.HasPrefix(err.Error(), "kafka: ") || !strings.Contains(err.Error(), b.Addr) || !strings.Contains(err.Error(), "kafka.tls") {
		t.Fatalf("Check without TLS against a SASL_SSL listener = %v; want an error naming the broker and kafka.tls", err)
	}
}

func TestSASLSSLCheckPassesOverUnreachableSeed(t *testing.T) {
	b := kafkatest.SharedSASLSSL(t)
	c := b.ClientConfig("two-seeds")
	c.Brokers = []string{"127.0.0.1:1", b.Addr}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafka.Check(ctx, c); err != nil {
		t.Fatalf("Check with a dead first seed: %v", err)
	}
}

// TestSASLSSLCompressionCodecsRoundTrip produces with each codec through a client
// built from ClientConfig and checks, from the fetched batches' attributes, that the
// broker stored them compressed with that codec, and that the records come back.
func TestSASLSSLCompressionCodecsRoundTrip(t *testing.T) {
	b := kafkatest.SharedSASLSSL(t)
	// Kafka's codec ids in a record batch's attributes.
	codecs := map[string]uint8{"": 2, kafka.CompressionSnappy: 2, kafka.CompressionLZ4: 3, kafka.CompressionZstd: 4, kafka.CompressionGzip: 1, kafka.CompressionNone: 0}
	for name, id := range codecs {
		t.Run("codec="+name, func(t *testing.T) {
			topic := "compression-" + cmp.Or(name, "default")
			b.CreateTopic(t, topic, 1)
			c := b.ClientConfig("compression")
			c.Compression = name
			prod, err := c.NewFranzClient(kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0))
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var recs []*kgo.Record
			for i := range 100 {
				recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, `{"event_id":"e-%d","payload":"%s"}`, i, strings.Repeat("x", 64))})
			}
			if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			hook := &batchCodecs{seen: map[uint8]bool{}}
			cons, err := c.NewFranzClient(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.WithHooks(hook))
			if err != nil {
				t.Fatal(err)
			}
			defer cons.Close()
			got := 0
			for got < len(recs) {
				fs := cons.PollFetches(ctx)
				if ctx.Err() != nil {
					t.Fatalf("consumed %d of %d records: %v", got, len(recs), ctx.Err())
				}
				fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
				fs.EachRecord(func(r *kgo.Record) {
					if string(r.Value) != string(recs[got].Value) {
						t.Fatalf("record %d = %q; want %q", got, r.Value, recs[got].Value)
					}
					got++
				})
			}
			hook.mu.Lock()
			defer hook.mu.Unlock()
			if len(hook.seen) != 1 || !hook.seen[id] {
				t.Fatalf("batches were stored with codecs %v; want only %d (%s)", hook.seen, id, cmp.Or(name, "snappy, the default"))
			}
		})
	}
}

// batchCodecs records the compression codec of every fetched batch.
type batchCodecs struct {
	mu   sync.Mutex
	seen map[uint8]bool
}

func (h *batchCodecs) OnFetchBatchRead(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.FetchBatchMetrics) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen[m.CompressionType] = true
}

// kafkaPythonInstall is how to get the independent consumer TestSASLSSLKafkaPython
// needs (scripts/setup.sh runs it).
const kafkaPythonInstall = "python3 -m pip install kafka-python==3.0.12"

// TestSASLSSLKafkaPythonReadsGzipAndNone checks the advice of kafka.compression's
// docs with kafka-python as installed, without extra codec packages: it reads gzip
// and uncompressed output, and cannot read lz4 or snappy (the default).
func TestSASLSSLKafkaPythonReadsGzipAndNone(t *testing.T) {
	if out, err := exec.Command("python3", "-c", "import kafka").CombinedOutput(); err != nil {
		t.Fatalf("kafka-python is needed to check the codecs independently; install it with: %s\n(%v: %s)", kafkaPythonInstall, err, out)
	}
	b := kafkatest.SharedSASLSSL(t)
	codecs := []string{kafka.CompressionGzip, kafka.CompressionNone, kafka.CompressionLZ4, kafka.CompressionSnappy}
	want := map[string][]string{}
	for _, codec := range codecs {
		topic := "kafka-python-" + codec
		b.CreateTopic(t, topic, 1)
		c := b.ClientConfig("kafka-python")
		c.Compression = codec
		cl, err := c.NewFranzClient(kgo.DefaultProduceTopic(topic))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var recs []*kgo.Record
		for i := range 20 {
			v := fmt.Sprintf(`{"event_id":"%s-%d","score":0.%d}`, codec, i, i)
			want[topic] = append(want[topic], v)
			recs = append(recs, &kgo.Record{Value: []byte(v)})
		}
		err = cl.ProduceSync(ctx, recs...).FirstErr()
		cancel()
		cl.Close()
		if err != nil {
			t.Fatalf("produce %s: %v", codec, err)
		}
	}
	s := b.SASLSSL
	args := []string{"testdata/read_kafka_python.py", b.Addr, s.CAFile, s.Username}
	for _, codec := range codecs {
		args = append(args, "kafka-python-"+codec)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "python3", args...)
	cmd.Env = append(os.Environ(), "KAFKA_PASSWORD="+s.Password)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("read_kafka_python.py: %v\n%s", err, stderr.String())
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("read_kafka_python.py output %s: %v", out, err)
	}
	t.Logf("kafka-python %s", got["kafka_python"])
	for _, codec := range codecs {
		topic := "kafka-python-" + codec
		var r struct {
			Values []string
			Error  string
		}
		if err := json.Unmarshal(got[topic], &r); err != nil {
			t.Fatalf("%s: %v in %s", topic, err, out)
		}
		switch codec {
		case kafka.CompressionGzip, kafka.CompressionNone:
			if r.Error != "" || !slices.Equal(r.Values, want[topic]) {
				t.Errorf("kafka-python read %s output as %q, error %q; want the %d records written", codec, r.Values, r.Error, len(want[topic]))
			}
		default:
			t.Logf("%s: %s", codec, r.Error)
			if r.Error == "" || !strings.Contains(strings.ToLower(r.Error), codec) {
				t.Errorf("kafka-python read %s output (%d records, error %q); want a codec error: kafka.compression's docs say it needs an extra package", codec, len(r.Values), r.Error)
			}
		}
	}
}
