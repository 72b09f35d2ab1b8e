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

func TestRealKafkaSASLSSLRoundTrip(t *testing.T) {
	b := StartSASLSSL(t, SASLSSLOptions{Users: []User{{Name: "alice", Password: "alice-secret"}}})
	if b.SASLSSL == nil || b.SASLSSL.Username != "alice" || b.SASLSSL.CAFile == "" {
		t.Fatalf("SASLSSL = %+v; want alice and a CA file", b.SASLSSL)
	}
	roundTrip(t, b) // through testkit's own client: TLS and SCRAM-SHA-512
}
