package kafkatest

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
)

// shared is the test binary's one SASL_SSL broker, started by the first
// SharedSASLSSL call and stopped by Main.
var shared struct {
	mainRunning atomic.Bool
	once        sync.Once
	broker      *Broker
	err         error
}

// Main runs the tests of a package that uses SharedSASLSSL, then stops the shared
// broker, and returns the exit code. Call it from the package's TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(kafkatest.Main(m)) }
func Main(m *testing.M) int {
	shared.mainRunning.Store(true)
	code := m.Run()
	if b := shared.broker; b != nil {
		if err := b.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "kafkatest: stop the shared broker: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
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
		shared.broker, shared.err = launch(&SASLSSLOptions{}, func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, format+"\n", args...)
		})
	})
	if shared.err != nil {
		tb.Fatalf("kafkatest: shared SASL_SSL broker: %v", shared.err)
	}
	return shared.broker
}
