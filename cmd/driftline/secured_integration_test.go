//go:build integration

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/connectors/watermillkafka"
	"github.com/driftline/driftline/detectors/alert"
	"github.com/driftline/driftline/internal/app"
	"github.com/driftline/driftline/models/adminapi"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// securedSpec writes the demo spec for a SASL_SSL broker (SCRAM-SHA-512,
// the test CA) and a TLS redis-server with an ACL user, with the passwords
// in environment variables, and returns its path.
func securedSpec(t *testing.T, broker *kafkatest.Broker, rds *redistest.Redis, admin, kafkaPasswordEnv string) string {
	t.Helper()
	s := broker.SASLSSL
	kafkaBlock := fmt.Sprintf("kafka:\n  brokers: [%q]\n  tls: {ca_file: %q}\n  sasl: {mechanism: SCRAM-SHA-512, username: %s, password_env: %s}\n  compression: zstd\n",
		broker.Addr, s.CAFile, s.Username, kafkaPasswordEnv)
	redisBlock := fmt.Sprintf("redis:\n  addr: %q\n  username: %s\n  password_env: SECURED_REDIS_PASSWORD\n  tls: {ca_file: %q}\nadmin:\n  addr: %q\n",
		rds.Addr, rds.Users[0].Name, rds.TLS.CAFile, admin)
	text := strings.Replace(string(app.DemoSpec), "kafka:\n", kafkaBlock, 1)
	text = strings.Replace(text, "name: demo\n", "name: demo\n"+redisBlock, 1)
	path := filepath.Join(t.TempDir(), "secured.yaml")
	writeFile(t, path, text)
	return path
}

// TestIntegrationSecuredCluster: driftline produce, run (data plane, label
// plane, alerts router, audit forwarder) and replay all work against a real
// Kafka broker whose only listener is SASL_SSL (SCRAM-SHA-512 users made at
// format time, a CA made in the test) and a redis-server with TLS and an
// ACL user. A wrong Kafka password fails fast naming the mechanism and the
// broker. No password reaches a log, a metric, an error or an /api/v1
// answer.
func TestIntegrationSecuredCluster(t *testing.T) {
	broker := kafkatest.StartSASLSSL(t, kafkatest.SASLSSLOptions{})
	const redisPassword = "redis-acl-pw-7c1f0e"
	rds := redistest.StartRedisWith(t, redistest.Options{TLS: true, Users: []redistest.User{{Name: "driftline", Password: redisPassword}}})
	kafkaPassword := broker.SASLSSL.Password
	t.Setenv("SECURED_KAFKA_PASSWORD", kafkaPassword)
	t.Setenv("SECURED_KAFKA_WRONG", "not-the-password-0")
	t.Setenv("SECURED_REDIS_PASSWORD", redisPassword)
	t.Setenv("DRIFTLINE_DEMO_HMAC_KEY", "secured-hmac-key-0123456789abcdef")
	t.Setenv("DRIFTLINE_DEMO_AES_KEY", strings.Repeat("ab", 32))
	const adminToken = "secured-admin-token-0123456789"
	t.Setenv(adminapi.EnvAdminToken, adminToken)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	admin := fmt.Sprintf("127.0.0.1:%d", port)
	specPath := securedSpec(t, broker, rds, admin, "SECURED_KAFKA_PASSWORD")
	spec, err := app.LoadSpec(specPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range app.Topics(spec) {
		broker.CreateTopic(t, topic, 2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var logs syncBuffer // everything the commands print, for the secret grep

	// A wrong password fails at once, naming the mechanism, user and broker.
	badSpec := securedSpec(t, broker, rds, admin, "SECURED_KAFKA_WRONG")
	start := time.Now()
	code, _, errOut := cli(t, "run", "--spec", badSpec)
	logs.Write([]byte(errOut))
	if code != 1 || !strings.Contains(errOut, `SASL SCRAM-SHA-512 authentication as "`+broker.SASLSSL.Username+`" failed at broker `+broker.Addr) {
		t.Fatalf("run with a wrong password: exit %d, stderr:\n%s", code, errOut)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("a wrong password took %s to fail", d)
	}

	// produce writes the stream through the spec's kafka block.
	const events = 3000
	code, out, errOut := cli(t, "produce", "--spec", specPath, "--events", fmt.Sprint(events), "--rate", "0",
		"--topic", spec.Topics.Input, "--labels-topic", spec.Topics.Labels, "--label-delay", "10ms", "--label-jitter", "10ms")
	logs.Write([]byte(out + errOut))
	if code != 0 || !strings.Contains(out, fmt.Sprintf("produced %d rows", events)) {
		t.Fatalf("produce: exit %d\n%s%s", code, out, errOut)
	}

	// run: predictions out, labels joined, the audit forwarder publishes.
	runCtx, stopRun := context.WithCancel(ctx)
	done := make(chan int, 1)
	go func() { done <- runMain(runCtx, []string{"run", "--spec", specPath, "-v"}, &logs, &logs) }()
	joined := regexp.MustCompile(`(?m)^driftline_labels_joined_total ([0-9.e+]+)$`)
	predicted := regexp.MustCompile(`(?m)^driftline_pipeline_events_out_total ([0-9.e+]+)$`)
	for metricValue(t, "http://"+admin+"/metrics", joined) < events*0.9 || metricValue(t, "http://"+admin+"/metrics", predicted) < events*0.9 {
		select {
		case code := <-done:
			t.Fatalf("run exited early with %d:\n%s", code, logs.String())
		case <-ctx.Done():
			t.Fatalf("run did not predict and join in time:\n%s", logs.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
	audit := readSecuredTopic(t, ctx, broker, spec.Topics.Audit, 2)
	if !strings.Contains(audit, `"what":"register"`) || !strings.Contains(audit, `"who":"bootstrap"`) {
		t.Fatalf("audit topic does not carry the bootstrap registration: %s", audit)
	}

	// The alerts router (watermill over franz-go) receives through SASL_SSL.
	kcc, err := app.KafkaClient(spec, "secured-test")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan alert.Alert, 16)
	if err := app.StartAlertRouter(ctx, spec, kcc, "secured-sre", func(_ context.Context, a alert.Alert) error { got <- a; return nil },
		slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	pub, err := watermillkafka.NewPublisher(watermillkafka.PublisherConfig{Client: kcc})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	want := alert.Alert{Detector: "ADWIN", Subject: alert.SubjectError, State: alert.StateDrift, DedupeKey: "secured-probe"}
	received := false
	for deadline := time.Now().Add(60 * time.Second); !received && time.Now().Before(deadline); {
		if err := pub.PublishJSON(ctx, spec.Topics.Alerts, want.DedupeKey, want); err != nil {
			t.Fatal(err)
		}
		select {
		case a := <-got:
			received = a.DedupeKey == want.DedupeKey
		case <-time.After(2 * time.Second):
		}
	}
	if !received {
		t.Fatal("the alerts router received nothing over SASL_SSL")
	}

	// The admin API answers; neither its answers nor /metrics hold a secret.
	var answers strings.Builder
	for _, path := range []string{"/metrics", "/api/v1/models", "/api/v1/audit", "/api/v1/models/nope"} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+admin+path, nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answers.Write(body)
	}
	if !strings.Contains(answers.String(), `"demo-logistic"`) {
		t.Fatalf("/api/v1/models does not list the model:\n%s", answers.String())
	}
	stopRun()
	if code := <-done; code != 0 {
		t.Fatalf("run exit code %d after cancel:\n%s", code, logs.String())
	}

	// replay backfills from the secured input topic, exactly once.
	code, out, errOut = cli(t, "replay", "--spec", specPath, "--from-offsets", "0:0,1:0", "--to-offsets", "0:100,1:100", "--to-topic", "backfill")
	logs.Write([]byte(out + errOut))
	if code != 0 || !strings.Contains(out, "200 input offsets") {
		t.Fatalf("replay: exit %d\n%s%s", code, out, errOut)
	}

	for name, secret := range map[string]string{"the Kafka password": kafkaPassword, "the Redis password": redisPassword} {
		for where, text := range map[string]string{"logs and errors": logs.String(), "/metrics and /api/v1 answers": answers.String()} {
			if strings.Contains(text, secret) {
				t.Errorf("%s appears in %s", name, where)
			}
		}
	}
}

// readSecuredTopic reads topic of the secured broker from its start until
// it has at least n records, and returns their values, one per line.
func readSecuredTopic(t *testing.T, ctx context.Context, broker *kafkatest.Broker, topic string, n int) string {
	t.Helper()
	cl := broker.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var b strings.Builder
	for count, deadline := 0, time.Now().Add(30*time.Second); count < n && time.Now().Before(deadline); {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) { count++; b.Write(r.Value); b.WriteByte('\n') })
		cancel()
	}
	return b.String()
}
