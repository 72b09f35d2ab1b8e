package app_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/connectors/redis"
	"github.com/driftline/driftline/internal/app"
	"github.com/driftline/driftline/pipeline"
)

const minimalSpec = `name: secured
topics: {input: in, predictions: out, dlq: dlq}
schema:
  id_field: id
  fields:
    - {name: id, type: string, required: true}
    - {name: x, type: float}
stages:
  featurize: {numeric: [x]}
model: {name: m}
`

func parse(t *testing.T, extra string) *pipeline.Spec {
	t.Helper()
	s, err := pipeline.ParseSpec("secured.yaml", []byte(minimalSpec+extra))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSecuredSpecMapsOntoConnectorConfigs(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "redis-password")
	if err := os.WriteFile(pwFile, []byte("redis-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DRIFTLINE_TEST_KAFKA_PASSWORD", "kafka-secret")
	s := parse(t, `kafka:
  brokers: [k1:9093, k2:9093]
  compression: none
  tls: {ca_file: /ca.pem, server_name: kafka.internal}
  sasl: {mechanism: SCRAM-SHA-512, username: driftline, password_env: DRIFTLINE_TEST_KAFKA_PASSWORD}
redis:
  mode: cluster
  addrs: [r1:6379, r2:6379]
  username: app
  password_file: `+pwFile+`
  hash_tag: true
  tls: {ca_file: /redis-ca.pem, cert_file: /c.pem, key_file: /k.pem}
`)
	kc, err := app.KafkaClient(s, "secured-labels")
	if err != nil {
		t.Fatal(err)
	}
	if kc.ClientID != "secured-labels" || kc.Compression != kafka.CompressionNone || len(kc.Brokers) != 2 ||
		kc.TLS.CAFile != "/ca.pem" || kc.TLS.ServerName != "kafka.internal" ||
		kc.SASL.Mechanism != kafka.SASLScramSHA512 || kc.SASL.Username != "driftline" || kc.SASL.Password.Reveal() != "kafka-secret" {
		t.Errorf("kafka client config %+v, sasl %+v", kc, kc.SASL)
	}
	rc, err := app.RedisClient(s)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Mode != redis.ModeCluster || len(rc.Addrs) != 2 || rc.Username != "app" || rc.Password.Reveal() != "redis-secret" || rc.TLS.KeyFile != "/k.pem" {
		t.Errorf("redis config %+v", rc)
	}
}

// TestEveryNameTheSpecTakesTheConnectorTakes keeps the spec's rules and the
// connectors' Validate in step: each codec, mechanism and mode a spec accepts
// maps to a config its connector accepts.
func TestEveryNameTheSpecTakesTheConnectorTakes(t *testing.T) {
	t.Setenv("DRIFTLINE_TEST_PW", "pw")
	for _, codec := range []string{"", "snappy", "lz4", "zstd", "gzip", "none"} {
		s := parse(t, "kafka: {brokers: [k:9092], compression: '"+codec+"'}\n")
		if _, err := app.KafkaClient(s, ""); err != nil {
			t.Errorf("compression %q: %v", codec, err)
		}
	}
	for _, sasl := range []string{
		"{mechanism: PLAIN, username: u, password_env: DRIFTLINE_TEST_PW}",
		"{mechanism: SCRAM-SHA-256, username: u, password_env: DRIFTLINE_TEST_PW}",
		"{mechanism: SCRAM-SHA-512, username: u, password_env: DRIFTLINE_TEST_PW}",
		"{mechanism: OAUTHBEARER, token_file: /run/token}",
	} {
		s := parse(t, "kafka: {brokers: [k:9092], sasl: "+sasl+"}\n")
		if _, err := app.KafkaClient(s, ""); err != nil {
			t.Errorf("sasl %s: %v", sasl, err)
		}
	}
	for _, r := range []string{
		"{addr: r:6379}",
		"{mode: standalone, addrs: [r:6379], username: u, password_env: DRIFTLINE_TEST_PW, db: 2}",
		"{mode: sentinel, addrs: [s1:26379, s2:26379], master_name: p, password_env: DRIFTLINE_TEST_PW}",
		"{mode: cluster, addrs: [n1:6379, n2:6379], hash_tag: true}",
	} {
		s := parse(t, "redis: "+r+"\n")
		if _, err := app.RedisClient(s); err != nil {
			t.Errorf("redis %s: %v", r, err)
		}
	}
}

func TestUnsetPasswordVarIsNamed(t *testing.T) {
	s := parse(t, "kafka: {brokers: [k:9092], sasl: {mechanism: PLAIN, username: u, password_env: DRIFTLINE_TEST_UNSET}}\n")
	if _, err := app.KafkaClient(s, ""); err == nil || !strings.Contains(err.Error(), "kafka.sasl password: env var DRIFTLINE_TEST_UNSET is empty or unset") {
		t.Fatalf("KafkaClient with an unset password var = %v; want an error naming the var", err)
	}
	s = parse(t, "redis: {addr: r:6379, password_file: /nonexistent/pw}\n")
	if _, err := app.RedisClient(s); err == nil || !strings.Contains(err.Error(), "redis password: read secret file /nonexistent/pw") {
		t.Fatalf("RedisClient with a missing password file = %v; want an error naming the file", err)
	}
}
