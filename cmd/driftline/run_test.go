package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/internal/app"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/streams"
	"github.com/driftline/driftline/testkit/streams/feed"
)

// TestRunLearnsFromLabels runs `driftline run` on kfake and miniredis with
// a labels topic, and checks through its /metrics that labels are joined:
// the run command consumes the labels topic, not only the demo.
func TestRunLearnsFromLabels(t *testing.T) {
	broker := kafkatest.StartKfake(t)
	rds := redistest.StartMiniredis(t)
	t.Setenv("DRIFTLINE_DEMO_HMAC_KEY", "run-test-hmac-key-0123456789abcdef")
	t.Setenv("DRIFTLINE_DEMO_AES_KEY", strings.Repeat("ef", 32))
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	admin := fmt.Sprintf("127.0.0.1:%d", port)
	text := strings.Replace(string(app.DemoSpec), "kafka:\n", fmt.Sprintf("kafka:\n  brokers: [%q]\n", broker.Addr), 1)
	text = strings.Replace(text, "name: demo\n", fmt.Sprintf("name: demo\nredis:\n  addr: %q\nadmin:\n  addr: %q\n", rds.Addr, admin), 1)
	specPath := filepath.Join(t.TempDir(), "spec.yaml")
	writeFile(t, specPath, text)
	for _, topic := range []string{"events", "predictions", "events.dlq", "labels", "alerts"} {
		broker.CreateTopic(t, topic, 2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stats feed.Stats
	cfg := feed.Config{Topic: "events", LabelsTopic: "labels", Events: 3000,
		Stream: streams.Config{Concept: streams.ConceptSEA, Seed: 3}}
	if err := feed.Produce(ctx, newTestProducer(t, broker.Addr, time.Millisecond), cfg, &stats); err != nil {
		t.Fatal(err)
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() { done <- runMain(runCtx, []string{"run", "--spec", specPath}, io.Discard, &stderr) }()
	joined := regexp.MustCompile(`(?m)^driftline_labels_joined_total ([0-9.e+]+)$`)
	for {
		if n := metricValue(t, "http://"+admin+"/metrics", joined); n >= float64(stats.Valid.Load()) {
			break
		}
		select {
		case code := <-done:
			t.Fatalf("run exited early with %d:\n%s", code, stderr.String())
		case <-ctx.Done():
			t.Fatalf("labels not joined in time; stderr:\n%s", stderr.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
	stop()
	if code := <-done; code != 0 {
		t.Fatalf("run exit code %d after cancel:\n%s", code, stderr.String())
	}
}

// metricValue scrapes url and returns the first capture of re, or 0.
func metricValue(t *testing.T, url string, re *regexp.Regexp) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0 // the admin server is not up yet
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	m := re.FindSubmatch(body)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
