package stages

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/streams"
)

// BenchmarkDLQEncrypted is decode → validate run by a pipeline.Runner
// whose DLQ records are encrypted (Anonymize.EncryptDLQ, the spec's
// dlq_payload: encrypt), over batches of 1,024 events of which 10 are
// malformed as the end-to-end benchmark's 1% are (streams.CorruptAs,
// the kinds in turn, so one row in 1,024 is a 256 KiB huge_string), with
// a sink that acknowledges at once from another goroutine, as a
// partition loop runs them. cpu-ns/event is the process's CPU.
func BenchmarkDLQEncrypted(b *testing.B) {
	spec := testSpec(b, false)
	spec.Schema.MaxStringBytes = pipeline.DefaultMaxStringBytes
	rows := benchRows(b)
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 10 {
		at := i * (len(rows) / 10)
		bad, err := streams.CorruptAs(streams.CorruptKinds[i%len(streams.CorruptKinds)], rng, rows[at])
		must(b, err)
		rows[at] = bad
	}
	crypt, err := NewAnonymize(spec, testKeys())
	must(b, err)
	m, err := pipeline.NewMetrics(prometheus.NewRegistry())
	must(b, err)
	r, err := pipeline.NewRunner(pipeline.RunnerConfig{
		Stages: []pipeline.Stage{NewDecode(spec), NewValidate(spec)},
		Sink:   benchAsyncSink{}, DLQTopic: "dlq", DLQPayload: crypt.Clone().EncryptDLQ, Metrics: m,
	})
	must(b, err)
	defer r.Close()
	msgs := benchMessages(rows)
	for i := range msgs {
		msgs[i].Key = []byte("user-key")
	}
	acks := make(chan error, 1024)
	ack := func(err error) { acks <- err }
	ctx := context.Background()
	must(b, r.Handle(ctx, msgs))
	n := 0
	perEvent(b, func() {
		must(b, r.HandleAsync(ctx, msgs, ack))
		n++
		for len(acks) > 0 {
			must(b, <-acks)
			n--
		}
	})
	for ; n > 0; n-- {
		must(b, <-acks)
	}
}
