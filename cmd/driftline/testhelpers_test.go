package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/internal/app"
)

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// newTestProducer is a producer to the broker at addr, closed at cleanup.
func newTestProducer(t testing.TB, addr string, linger time.Duration) *kafka.Producer {
	t.Helper()
	p, err := kafka.NewProducer(kafka.ProducerConfig{Client: kafka.ClientConfig{Brokers: []string{addr}}, Linger: linger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// demoSpecWithoutRollout is the demo spec without its rollout block, its
// last block.
func demoSpecWithoutRollout() string {
	text, _, _ := strings.Cut(string(app.DemoSpec), "\nrollout:\n")
	return text + "\n"
}
