package app

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/kafkatest"
)

// demoSpecWithoutRollout is the demo spec without its rollout block (the
// last block of demo.yaml), for tests that add their own or use a model
// that cannot roll out (model.onnx).
func demoSpecWithoutRollout(t testing.TB) string {
	t.Helper()
	text := string(DemoSpec)
	i := strings.Index(text, "\nrollout:\n")
	if i < 0 {
		t.Fatal("demo.yaml has no rollout block")
	}
	for _, line := range strings.Split(text[i+len("\nrollout:\n"):], "\n") {
		if line != "" && line[0] != ' ' && line[0] != '#' {
			t.Fatalf("demo.yaml: rollout is no longer its last block (%q follows it)", line)
		}
	}
	return text[:i+1]
}

// fedApp is an App whose Run goes on in its own goroutine, with a
// producer (feed) to the broker for the test's input.
type fedApp struct {
	*App
	runErr  <-chan error  // Run's result, sent once when it returns
	ran     chan struct{} // closed when Run returns
	stopRun context.CancelFunc
	feed    *kafka.Producer
}

// startFedApp opens spec, starts Run under ctx, waits up to 20 s for the
// App to be ready and makes a producer to broker. Close undoes it all.
func startFedApp(tb testing.TB, ctx context.Context, spec *pipeline.Spec, broker *kafkatest.Broker) *fedApp {
	tb.Helper()
	a, err := Open(ctx, spec, Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	runCtx, stopRun := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	r := &fedApp{App: a, runErr: runErr, ran: make(chan struct{}), stopRun: stopRun}
	go func() {
		err := a.Run(runCtx)
		close(r.ran)
		runErr <- err
	}()
	waitFor(tb, runErr, 20*time.Second, "ready", a.Ready)
	if r.feed, err = kafka.NewProducer(kafka.ProducerConfig{Client: broker.ClientConfig("feed")}); err != nil {
		r.Close()
		tb.Fatal(err)
	}
	return r
}

// Stop ends Run and returns its error, failing the test when Run does
// not return within 30 s.
func (r *fedApp) Stop(tb testing.TB) error {
	tb.Helper()
	r.stopRun()
	select {
	case err := <-r.runErr:
		return err
	case <-time.After(30 * time.Second):
		tb.Fatal("Run did not return within 30s of its context's end")
		return nil
	}
}

// Close closes the producer, ends Run, waits up to 30 s for it to return
// and closes the App.
func (r *fedApp) Close() {
	if r.feed != nil {
		r.feed.Close()
	}
	r.stopRun()
	select {
	case <-r.ran:
	case <-time.After(30 * time.Second):
	}
	r.App.Close()
}
