package kafkatest

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
)

// shared holds the test binary's shared brokers: one SASL_SSL broker,
// started by the first SharedSASLSSL call, and one plaintext broker,
// started by the first SharedKafka call; Main stops them.
var shared struct {
	mainRunning atomic.Bool
	once        sync.Once
	broker      *Broker
	err         error

	plainOnce   sync.Once
	plainBroker *Broker
	plainErr    error
}

// Main runs the tests of a package that uses SharedSASLSSL or SharedKafka, then stops
// the shared brokers, and returns the exit code. Call it from the package's TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(kafkatest.Main(m)) }
func Main(m *testing.M) int {
	shared.mainRunning.Store(true)
	code := m.Run()
	for _, b := range []*Broker{shared.broker, shared.plainBroker} {
		if b == nil {
			continue
		}
		if err := b.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "kafkatest: stop the shared broker: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// SharedKafka returns the test binary's one plaintext real broker (as
// StartKafka starts it), starting it at the first call, so that the tests
// of a package pay for one broker start. Tests that share it use topic and
// group names of their own, and must not stop it. It needs TestMain to call
// Main, which stops the broker after the tests; without it, or when the
// start failed, the test fails and says why.
func SharedKafka(tb testing.TB) *Broker {
	tb.Helper()
	if !shared.mainRunning.Load() {
		tb.Fatalf("kafkatest: SharedKafka needs the package's TestMain to call kafkatest.Main, which stops the broker after the tests")
	}
	shared.plainOnce.Do(func() {
		shared.plainBroker, shared.plainErr = launch(nil, false, func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, format+"\n", args...)
		})
	})
	if shared.plainErr != nil {
		tb.Fatalf("kafkatest: shared broker: %v", shared.plainErr)
	}
	return shared.plainBroker
}

// SharedSASLSSL returns the test binary's one SASL_SSL broker with the default
// SASLSSLOptions (one user "driftline"), starting it at the first call, so that the
// tests of a package pay for one broker start. Tests that share it use topic and group
// names of their own. It needs TestMain to call Main, which stops the broker after the
// tests; without it, or when the start failed, the test fails and says why.
func SharedSASLSSL(tb testing.TB) *Broker {
	tb.Helper()
	if !shared.mainRunning.Load() {
		tb.Fatalf("kafkatest: SharedSASLSSL needs the package's TestMain to call kafkatest.Main, which stops the broker after the tests")
	}
	shared.once.Do(func() {
		shared.broker, shared.err = launch(&SASLSSLOptions{}, false, func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, format+"\n", args...)
		})
	})
	if shared.err != nil {
		tb.Fatalf("kafkatest: shared SASL_SSL broker: %v", shared.err)
	}
	return shared.broker
}
