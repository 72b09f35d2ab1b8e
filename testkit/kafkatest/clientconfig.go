package kafkatest

import (
	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/pipeline"
)

// ClientConfig is how a driftline connector reaches b, with client id clientID:
// plaintext, or, for a SASL_SSL broker, over TLS trusting b's CA, as SASLSSL.Username
// with SCRAM-SHA-512.
func (b *Broker) ClientConfig(clientID string) kafka.ClientConfig {
	c := kafka.ClientConfig{Brokers: []string{b.Addr}, ClientID: clientID}
	if s := b.SASLSSL; s != nil {
		c.TLS = &kafka.TLSConfig{CAFile: s.CAFile}
		c.SASL = &kafka.SASLConfig{Mechanism: kafka.SASLScramSHA512, Username: s.Username, Password: pipeline.NewSecret(s.Password)}
	}
	return c
}
