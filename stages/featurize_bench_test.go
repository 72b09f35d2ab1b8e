package stages

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/redistest"
)

// BenchmarkEntityAggregatesRunner is decode → validate → featurize with
// entity aggregates (10,000 users, batches of 1,024 events) run by a
// pipeline.Runner over a sink that acknowledges at once, as a partition
// loop runs them: one op is one batch through HandleAsync. With the
// aggregates written behind (Batch.Defer), a batch's Redis write is in
// flight while the loop decodes and featurizes the next batch; written
// synchronously (before issue 15's item 2), the loop waits for it.
//   - cache=on: the default local cache; every batch writes its entities,
//     none reads them (steady state).
//   - cache=off: entity.local_cache 0; every batch also reads its
//     entities from Redis (or, written behind, from memory while their
//     write is in flight).
//
// Against miniredis (in process: its work is on this process's CPU), a
// real redis-server on loopback, and the same behind a proxy that delays
// every chunk 250 µs or 1 ms each way (a 0.5 or 2 ms round trip: a network
// hop between the pipeline and Redis; on a loaded machine the sleeps
// overshoot, so the round trips are longer).
func BenchmarkEntityAggregatesRunner(b *testing.B) {
	server := func(tb testing.TB) redis.UniversalClient { return redistest.StartRedis(tb).Client(tb) }
	servers := []struct {
		name  string
		start func(testing.TB) redis.UniversalClient
	}{
		{"redis=miniredis", func(tb testing.TB) redis.UniversalClient { return redistest.StartMiniredis(tb).Client(tb) }},
		{"redis=server", server},
		{"redis=server+0.5ms", delayed(250 * time.Microsecond)},
		{"redis=server+2ms", delayed(time.Millisecond)},
	}
	for _, srv := range servers {
		b.Run(srv.name, func(b *testing.B) {
			for _, cache := range []string{"on", "off"} {
				b.Run("cache="+cache, func(b *testing.B) {
					spec := entityBenchSpec(b, cache)
					rdb := srv.start(b)
					fz, err := NewFeaturize(spec, rdb)
					must(b, err)
					m, err := pipeline.NewMetrics(prometheus.NewRegistry())
					must(b, err)
					r, err := pipeline.NewRunner(pipeline.RunnerConfig{
						Stages: []pipeline.Stage{NewDecode(spec), NewValidate(spec), fz},
						Sink:   benchAsyncSink{}, DLQTopic: "dlq", Metrics: m,
					})
					must(b, err)
					defer r.Close()
					msgs := benchMessages(benchRows(b))
					acks := make(chan error, 1024)
					ack := func(err error) { acks <- err }
					ctx := context.Background()
					must(b, r.Handle(ctx, msgs)) // the first batch reads every entity
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
				})
			}
		})
	}
}

// BenchmarkFeaturizeEntities is the featurize stage alone with entity
// aggregates, under a pipeline.Runner as a partition loop runs it (one op
// is one batch of 1,024 events through HandleAsync; the aggregates' write
// is in flight while the next batch is featurized, and its CPU, on the
// deferred work's goroutine, is in cpu-ns/event). The input is 8 batches
// of SEA events from 10,000 users, decoded, validated and anonymized once
// (so the entity keys are user_id's pseudonyms, as in a pipeline) and
// taken in turn. Cache as in BenchmarkEntityAggregatesRunner. Against
// miniredis (its work is on this process's CPU) and a real redis-server
// on loopback (its work is not: there it reports the server's time in
// commands per event, srv-ns/event, from INFO commandstats).
func BenchmarkFeaturizeEntities(b *testing.B) {
	servers := []struct {
		name  string
		start func(testing.TB) *redistest.Redis
	}{
		{"redis=miniredis", redistest.StartMiniredis},
		{"redis=server", redistest.StartRedis},
	}
	for _, srv := range servers {
		b.Run(srv.name, func(b *testing.B) {
			for _, cache := range []string{"on", "off"} {
				b.Run("cache="+cache, func(b *testing.B) {
					spec := entityBenchSpec(b, cache)
					in := anonymizedBatches(b, spec, 8)
					red := srv.start(b)
					rdb := red.Client(b)
					fz, err := NewFeaturize(spec, rdb)
					must(b, err)
					m, err := pipeline.NewMetrics(prometheus.NewRegistry())
					must(b, err)
					rs := &recordStage{}
					r, err := pipeline.NewRunner(pipeline.RunnerConfig{
						Stages: []pipeline.Stage{rs, fz},
						Sink:   benchAsyncSink{}, DLQTopic: "dlq", Metrics: m,
					})
					must(b, err)
					defer r.Close()
					acks := make(chan error, 1024)
					ack := func(err error) { acks <- err }
					ctx := context.Background()
					for k := range in { // the first round reads every entity
						rs.rec = in[k].rec
						must(b, r.Handle(ctx, in[k].msgs))
					}
					srv0 := serverUsec(b, red, rdb)
					n, k := 0, 0
					perEvent(b, func() {
						rs.rec = in[k].rec
						must(b, r.HandleAsync(ctx, in[k].msgs, ack))
						k = (k + 1) % len(in)
						n++
						for len(acks) > 0 {
							must(b, <-acks)
							n--
						}
					})
					for ; n > 0; n-- {
						must(b, <-acks)
					}
					if srv0 >= 0 {
						b.ReportMetric((serverUsec(b, red, rdb)-srv0)*1e3/float64(b.N*benchBatch), "srv-ns/event")
					}
				})
			}
		})
	}
}

// serverUsec is the time a redis-server spent in the commands featurize
// sends (INFO commandstats' usec of EVALSHA, EVAL and HMGET; a script's
// includes the calls it made, which commandstats also counts under their
// own names), in µs; -1 on miniredis, which keeps no such statistics.
func serverUsec(tb testing.TB, r *redistest.Redis, rdb redis.UniversalClient) float64 {
	tb.Helper()
	if r.Mini != nil {
		return -1
	}
	stats := redistest.CommandStats(tb, rdb)
	return float64(stats["evalsha"].Usec + stats["eval"].Usec + stats["hmget"].Usec)
}

// recordBatch is a batch's messages and its record after decode, validate
// and anonymize.
type recordBatch struct {
	msgs []pipeline.Message
	rec  arrow.RecordBatch
}

// anonymizedBatches runs n batches of benchBatch SEA events (10,000 users)
// through decode, validate and anonymize.
func anonymizedBatches(b *testing.B, spec *pipeline.Spec, n int) []recordBatch {
	_, rows := genEvents(b, 42, n*benchBatch, 10_000)
	an, err := NewAnonymize(spec, testKeys())
	must(b, err)
	d, v := NewDecode(spec), NewValidate(spec)
	out := make([]recordBatch, n)
	for k := range out {
		msgs := benchMessages(rows[k*benchBatch : (k+1)*benchBatch])
		batch := &pipeline.Batch{}
		batch.Reset(msgs)
		mustProcess(b, batch, d, v, an)
		for i := range batch.State {
			if !batch.OK(i) {
				b.Fatalf("batch %d row %d rejected: %+v", k, i, batch.Rejections[i])
			}
		}
		out[k] = recordBatch{msgs: msgs, rec: batch.Record}
		b.Cleanup(batch.Record.Release)
	}
	return out
}

// recordStage stands in for decode, validate and anonymize: it sets the
// batch's record to rec (the batch releases it on its next Reset).
type recordStage struct{ rec arrow.RecordBatch }

func (*recordStage) Name() string { return "record" }

func (s *recordStage) Process(_ context.Context, b *pipeline.Batch) error {
	s.rec.Retain()
	b.Record = s.rec
	return nil
}

// benchAsyncSink acknowledges every write at once, from another goroutine,
// as a producer's callback would.
type benchAsyncSink struct{}

func (benchAsyncSink) Write(context.Context, []pipeline.OutRecord) error { return nil }

func (benchAsyncSink) WriteAsync(_ context.Context, _ []pipeline.OutRecord, done func(error)) {
	go done(nil)
}

// delayed starts a redis-server and returns a client that reaches it
// through delayProxy.
func delayed(oneWay time.Duration) func(testing.TB) redis.UniversalClient {
	return func(tb testing.TB) redis.UniversalClient {
		r := redistest.StartRedis(tb)
		c := redis.NewClient(&redis.Options{Addr: delayProxy(tb, r.Addr, oneWay)})
		tb.Cleanup(func() { c.Close() })
		return c
	}
}

// delayProxy listens on loopback and forwards every connection to addr,
// delivering each chunk read in either direction delay after it was read
// (latency without a bandwidth limit). It returns the listening address.
func delayProxy(tb testing.TB, addr string, delay time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", addr)
			if err != nil {
				in.Close()
				continue
			}
			go delayCopy(out, in, delay)
			go delayCopy(in, out, delay)
		}
	}()
	return ln.Addr().String()
}

// delayCopy copies src to dst, each chunk delay after it was read.
func delayCopy(dst, src net.Conn, delay time.Duration) {
	type chunk struct {
		at   time.Time
		data []byte
	}
	q := make(chan chunk, 1024)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 64<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{time.Now(), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	defer dst.Close()
	for c := range q {
		time.Sleep(time.Until(c.at.Add(delay)))
		if _, err := dst.Write(c.data); err != nil {
			_, _ = io.Copy(io.Discard, src)
			return
		}
	}
}

// entityBenchSpec is the entity-aggregates spec of the featurize
// benchmarks, with the local cache "on" (the default) or "off".
func entityBenchSpec(tb testing.TB, cache string) *pipeline.Spec {
	spec := testSpec(tb, true)
	spec.Schema.MaxStringBytes = pipeline.DefaultMaxStringBytes
	if cache == "off" {
		off := 0
		spec.Stages.Featurize.Entity.LocalCache = &off
	}
	return spec
}
