package app

import (
	"errors"
	"fmt"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/connectors/redis"
	"github.com/driftline/driftline/pipeline"
)

// KafkaClient maps the spec's kafka block onto the connector's
// ClientConfig, resolving the SASL password from its env var or file.
// clientID overrides kafka.client_id when set (e.g. "<id>-labels").
func KafkaClient(spec *pipeline.Spec, clientID string) (kafka.ClientConfig, error) {
	k := &spec.Kafka
	cc := kafka.ClientConfig{Brokers: k.Brokers, ClientID: k.ClientID, Compression: k.Compression}
	if clientID != "" {
		cc.ClientID = clientID
	}
	cc.TLS = tlsFiles(k.TLS)
	if s := k.SASL; s != nil {
		pw, err := s.PasswordRef().Resolve()
		if err != nil {
			return cc, fmt.Errorf("kafka.sasl password: %w", err)
		}
		cc.SASL = &kafka.SASLConfig{Mechanism: s.Mechanism, Username: s.Username, Password: pw, TokenFile: s.TokenFile}
	}
	if len(cc.Brokers) == 0 {
		return cc, errors.New("no Kafka brokers: set kafka.brokers in the spec or pass --brokers")
	}
	return cc, cc.Validate()
}

// RedisClient maps the spec's redis block onto the connector's Config,
// resolving the password from its env var or file. redis.addr (one server)
// and redis.addrs (sentinels or seed nodes) are exclusive in a valid spec.
func RedisClient(spec *pipeline.Spec) (redis.Config, error) {
	r := &spec.Redis
	c := redis.Config{Mode: r.Mode, Addrs: r.Addrs, MasterName: r.MasterName, Username: r.Username, DB: r.DB, Timeout: r.Timeout.D()}
	if r.Addr != "" {
		c.Addrs = []string{r.Addr}
	}
	pw, err := r.PasswordRef().Resolve()
	if err != nil {
		return c, fmt.Errorf("redis password: %w", err)
	}
	c.Password = pw
	c.TLS = tlsFiles(r.TLS)
	if len(c.Addrs) == 0 {
		return c, errors.New("no Redis address: set redis.addr in the spec or pass --redis")
	}
	return c, c.Validate()
}

// tlsFiles maps a spec's tls block; nil stays nil (plaintext). Both
// connectors take the same TLS type (kafka.TLSConfig is redis.TLSConfig).
func tlsFiles(t *pipeline.TLSSpec) *kafka.TLSConfig {
	if t == nil {
		return nil
	}
	return &kafka.TLSConfig{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile,
		ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
}
