// Package kafkatest starts Kafka brokers for tests: a real Apache Kafka broker in KRaft
// mode for integration tests (StartKafka), and the in-process kfake cluster for unit tests
// (StartKfake). Both return a Broker whose Addr is a loopback host:port that any Kafka
// client can reach, and both stop at the test's cleanup.
//
// StartSASLSSL starts a real broker whose client listener is SASL_SSL (SCRAM users made
// at format time, a CA made in the test); SharedSASLSSL shares one such broker among
// the tests of a package (with Main in its TestMain).
//
// The real broker runs from the jars that scripts/setup-kafka.sh caches. It is never a
// silent fallback: when the jars or java are missing, StartKafka fails the test and names
// the setup script.
package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Broker is a running Kafka cluster of one broker, owned by the test that started it.
// Its methods are safe for concurrent use by parallel subtests.
type Broker struct {
	// Addr is the bootstrap address, 127.0.0.1:port.
	Addr string
	// LogPath is the file the real broker writes its log to; empty for kfake.
	LogPath string
	// Fake is the in-process cluster when the Broker came from StartKfake, else nil.
	// Tests may use it to inject faults (ControlKey) or inspect state.
	Fake *kfake.Cluster
	// SASLSSL is set for a broker from StartSASLSSL or SharedSASLSSL: what a client
	// needs to reach its SASL_SSL listener. Nil for a plaintext broker.
	SASLSSL *SASLSSL

	admin      *kadm.Client
	clientOpts []kgo.Opt    // TLS and SASL of testkit's own clients; none for plaintext
	stop       func() error // stops a real broker; nil for kfake
	// proc is a real broker's JVM (Stop, Start); nil for kfake.
	proc *brokerProcess
}

// StartKfake starts an in-process kfake cluster listening on a loopback port and closes
// it at tb.Cleanup. It has one broker unless opts say otherwise (kfake.NumBrokers,
// kfake.Ports); opts are applied after that default.
func StartKfake(tb testing.TB, opts ...kfake.Opt) *Broker {
	tb.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		tb.Fatalf("kafkatest: start kfake: %v", err)
	}
	tb.Cleanup(c.Close)
	b := &Broker{Addr: c.ListenAddrs()[0], Fake: c}
	b.admin = newAdmin(tb, b.Addr)
	return b
}

// Client returns a franz-go client seeded with the broker's address and the given
// options, closed at tb.Cleanup. For a SASL_SSL broker it connects over TLS as the
// broker's own SCRAM-SHA-512 user (a test of a client's own TLS and SASL settings
// builds that client itself, from b.SASLSSL).
func (b *Broker) Client(tb testing.TB, opts ...kgo.Opt) *kgo.Client {
	tb.Helper()
	cl, err := kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(b.Addr)}, b.clientOpts...), opts...)...)
	if err != nil {
		tb.Fatalf("kafkatest: new client: %v", err)
	}
	tb.Cleanup(cl.Close)
	return cl
}

// CreateTopic creates topic name with the given number of partitions and replication
// factor 1, and returns once every partition has a leader, so that producers can write
// to it at once. It fails the test on any error, including an existing topic.
func (b *Broker) CreateTopic(tb testing.TB, name string, partitions int32) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := createTopic(ctx, b.admin, name, partitions); err != nil {
		tb.Fatalf("kafkatest: %v", err)
	}
}

func createTopic(ctx context.Context, adm *kadm.Client, name string, partitions int32) error {
	resp, err := adm.CreateTopic(ctx, partitions, 1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("create topic %q: %w", name, err)
	}
	for {
		ready, err := topicReady(ctx, adm, name, partitions)
		if err == nil && ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %q has no leaders: %w", name, errors.Join(ctx.Err(), err))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func topicReady(ctx context.Context, adm *kadm.Client, name string, partitions int32) (bool, error) {
	topics, err := adm.ListTopics(ctx, name)
	if err != nil {
		return false, err
	}
	td, ok := topics[name]
	if !ok || td.Err != nil || int32(len(td.Partitions)) != partitions {
		return false, td.Err
	}
	for _, p := range td.Partitions {
		if p.Err != nil || p.Leader < 0 {
			return false, p.Err
		}
	}
	return true, nil
}

func newAdmin(tb testing.TB, addr string) *kadm.Client {
	tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		tb.Fatalf("kafkatest: new admin client: %v", err)
	}
	tb.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}
