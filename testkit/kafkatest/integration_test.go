//go:build integration

package kafkatest

import (
	"os"
	"testing"
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
