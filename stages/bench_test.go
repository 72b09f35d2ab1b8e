package stages

import (
	"context"
	"math"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/streams"
)

// benchBatch is the batch size of every benchmark: one op is one batch.
const benchBatch = 1024

// benchRows are realistic events from a 10,000-user SEA stream: an id, a
// timestamp, 3 PII strings, 3 categoricals and 10 floats rounded to 4
// decimals, as sensors and prices are (about 290 bytes).
func benchRows(b *testing.B) [][]byte {
	return benchRowsPrec(b, true)
}

// benchRowsPrec with round false keeps the generator's full-precision
// floats (16-17 significant digits, about 410 bytes).
func benchRowsPrec(b *testing.B, round bool) [][]byte {
	evs, _ := genEvents(b, 42, benchBatch, 10_000)
	rows := make([][]byte, len(evs))
	for i := range evs {
		if round {
			for k, f := range evs[i].F {
				evs[i].F[k] = math.Round(f*1e4) / 1e4
			}
		}
		rows[i] = streams.AppendJSON(nil, &evs[i])
	}
	n := 0
	for _, r := range rows {
		n += len(r)
	}
	b.SetBytes(int64(n))
	return rows
}

// perEvent runs body once per batch in a b.Loop and reports ns/event,
// allocs/event and events/s (on one core: the benchmarks run in one
// goroutine), and cpu-ns/event: the process's CPU time per event (body
// and the GC), which time spent waiting for a core on a loaded machine
// does not inflate as it does ns/event.
func perEvent(b *testing.B, body func()) {
	b.ReportAllocs()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mallocs := ms.Mallocs
	cpu0 := processCPU(b)
	n := 0
	for b.Loop() {
		body()
		n++
	}
	cpu := processCPU(b) - cpu0
	runtime.ReadMemStats(&ms)
	events := float64(n * benchBatch)
	nsPerEvent := float64(b.Elapsed().Nanoseconds()) / events
	b.ReportMetric(nsPerEvent, "ns/event")
	b.ReportMetric(float64(cpu.Nanoseconds())/events, "cpu-ns/event")
	b.ReportMetric(float64(ms.Mallocs-mallocs)/events, "allocs/event")
	b.ReportMetric(1e9/nsPerEvent, "events/s")
}

// processCPU is the CPU time this process has used (CLOCK_PROCESS_CPUTIME_ID).
func processCPU(b *testing.B) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_PROCESS_CPUTIME_ID, &ts); err != nil {
		b.Fatalf("process cpu clock: %v", err)
	}
	return time.Duration(ts.Nano())
}

func benchMessages(rows [][]byte) []pipeline.Message {
	msgs := make([]pipeline.Message, len(rows))
	for i, r := range rows {
		msgs[i] = pipeline.Message{Topic: "events", Partition: 0, Offset: int64(i), Value: r}
	}
	return msgs
}

func benchSpec(b testing.TB) *pipeline.Spec {
	spec := testSpec(b, false)
	spec.Schema.MaxStringBytes = pipeline.DefaultMaxStringBytes
	return spec
}

func must(b testing.TB, err error) {
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkDecode: floats=4dp is the realistic input; floats=full has the
// generator's 17-digit floats, which miss the exact fast path.
func BenchmarkDecode(b *testing.B) {
	for _, round := range []bool{true, false} {
		name := "floats=4dp"
		if !round {
			name = "floats=full"
		}
		b.Run(name, func(b *testing.B) {
			spec := benchSpec(b)
			msgs := benchMessages(benchRowsPrec(b, round))
			d := NewDecode(spec)
			var batch pipeline.Batch
			perEvent(b, func() {
				batch.Reset(msgs)
				must(b, d.Process(context.Background(), &batch))
			})
			if !batch.OK(benchBatch - 1) {
				b.Fatalf("rejected: %+v", batch.Rejections[benchBatch-1])
			}
		})
	}
}

// decoded returns one decoded and validated batch.
func decoded(b *testing.B, spec *pipeline.Spec) *pipeline.Batch {
	batch := &pipeline.Batch{}
	batch.Reset(benchMessages(benchRows(b)))
	must(b, NewDecode(spec).Process(context.Background(), batch))
	must(b, NewValidate(spec).Process(context.Background(), batch))
	for i := range batch.State {
		if !batch.OK(i) {
			b.Fatalf("row %d rejected: %+v", i, batch.Rejections[i])
		}
	}
	return batch
}

func BenchmarkValidate(b *testing.B) {
	spec := benchSpec(b)
	batch := decoded(b, spec)
	v := NewValidate(spec)
	perEvent(b, func() { must(b, v.Process(context.Background(), batch)) })
}

// BenchmarkAnonymize pseudonymizes user_id, encrypts email and masks phone.
// Cache=off is the pseudonymization without the pseudonym cache (one
// HMAC-SHA256 per value), for a before/after ratio in the same run.
func BenchmarkAnonymize(b *testing.B) {
	for _, cache := range []bool{false, true} {
		name := "cache=off"
		if cache {
			name = "cache=on"
		}
		b.Run(name, func(b *testing.B) {
			spec := benchSpec(b)
			batch := decoded(b, spec)
			orig := batch.Record
			a, err := NewAnonymize(spec, testKeys())
			must(b, err)
			if !cache {
				a.disablePseudonymCache()
			}
			perEvent(b, func() {
				orig.Retain()
				batch.Record = orig
				must(b, a.Process(context.Background(), batch))
				batch.Record.Release()
			})
			batch.Record = orig
		})
	}
}

// BenchmarkPseudonymize is the pseudonymize operator alone on user_id.
func BenchmarkPseudonymize(b *testing.B) {
	for _, cache := range []bool{false, true} {
		name := "cache=off"
		if cache {
			name = "cache=on"
		}
		b.Run(name, func(b *testing.B) {
			spec := parseTestSpec(b, false, map[string]string{
				"      - {field: email, op: encrypt}\n      - {field: phone, op: mask, keep_last: 4}\n": "      - {field: email, op: drop}\n      - {field: phone, op: drop}\n",
			})
			spec.Schema.MaxStringBytes = pipeline.DefaultMaxStringBytes
			batch := decoded(b, spec)
			orig := batch.Record
			a, err := NewAnonymize(spec, testKeys())
			must(b, err)
			a.cols = a.cols[:1] // user_id only
			if !cache {
				a.disablePseudonymCache()
			}
			perEvent(b, func() {
				orig.Retain()
				batch.Record = orig
				must(b, a.Process(context.Background(), batch))
				batch.Record.Release()
			})
			batch.Record = orig
		})
	}
}

func BenchmarkFeaturize(b *testing.B) {
	spec := benchSpec(b)
	batch := decoded(b, spec)
	fz, err := NewFeaturize(spec, nil)
	must(b, err)
	perEvent(b, func() {
		fb := &batch.Features
		fb.Dense, fb.Hashed, fb.Row = fb.Dense[:0], fb.Hashed[:0], fb.Row[:0]
		must(b, fz.Process(context.Background(), batch))
	})
}

func BenchmarkScore(b *testing.B) {
	spec := benchSpec(b)
	c := newChain(b, spec, nil)
	batch := decoded(b, spec)
	must(b, c.anon.Process(context.Background(), batch))
	must(b, c.fz.Process(context.Background(), batch))
	perEvent(b, func() {
		clear(batch.Outputs)
		batch.Outputs = batch.Outputs[:0]
		must(b, c.score.Process(context.Background(), batch))
	})
	if len(batch.Outputs) != benchBatch {
		b.Fatalf("%d outputs", len(batch.Outputs))
	}
}

// BenchmarkChain is decode → validate → anonymize → featurize → score in
// process, without Redis, as a Runner runs it: the batch's buffers come
// from a pool and each batch's lease is released two batches later (a
// sink that acknowledges within pipeline.DefaultMaxPendingBatches).
// Dedupe=miniredis adds the dedupe stage on an in-process miniredis: its
// cost is miniredis's, not a production Redis's. Fresh-buffers is
// dedupe=off without the pool: every batch's buffers are new memory.
func BenchmarkChain(b *testing.B) {
	for _, mode := range []string{"dedupe=off", "dedupe=miniredis", "fresh-buffers"} {
		b.Run(mode, func(b *testing.B) {
			spec := benchSpec(b)
			msgs := benchMessages(benchRows(b))
			c := newChain(b, spec, nil)
			st := []pipeline.Stage{c.decode, c.validate}
			if mode == "dedupe=miniredis" {
				_, rdb := startRedis(b)
				st = append(st, NewDedupe(spec, rdb))
			}
			st = append(st, c.anon, c.fz, c.score)
			var batch pipeline.Batch
			acks := newLaggedAcks(pipeline.DefaultMaxPendingBatches)
			if mode != "fresh-buffers" {
				batch.Pool = pipeline.NewBufferPool(pipeline.DefaultBufferPoolBytes)
			}
			perEvent(b, func() {
				batch.Reset(msgs)
				for _, s := range st {
					must(b, s.Process(context.Background(), &batch))
				}
				acks.sent(&batch)
			})
			if len(batch.Outputs) != benchBatch {
				b.Fatalf("%d outputs", len(batch.Outputs))
			}
		})
	}
}

// laggedAcks does what a Runner does with each batch's lease
// (pipeline.Batch.TakeLease) when its sink acknowledges a batch once the
// next ones were sent: it keeps the leases of the last n batches and
// releases the oldest when a new one comes.
type laggedAcks struct {
	leases []pipeline.Lease
	next   int
}

func newLaggedAcks(n int) *laggedAcks { return &laggedAcks{leases: make([]pipeline.Lease, n)} }

// sent takes b's lease after its stages ran, releasing the lease n
// batches old.
func (a *laggedAcks) sent(b *pipeline.Batch) {
	l := &a.leases[a.next]
	l.Release()
	b.TakeLease(l)
	a.next = (a.next + 1) % len(a.leases)
}

// TestChainAllocationsPerBatch checks that the chain's steady state under
// a Runner's buffer reuse allocates nothing per event and little per
// batch: a batch of 1,024 events allocates as often as one of 64 (the
// Arrow arrays' and records' small objects; nothing per row), and the
// per-batch buffers (columns, outputs' bytes) come back from the pool
// instead of being allocated.
func TestChainAllocationsPerBatch(t *testing.T) {
	spec := benchSpec(t)
	_, rows := genEvents(t, 42, 1024, 10_000)
	c := newChain(t, spec, nil)
	measure := func(n int) (allocs, bytes float64) {
		msgs := benchMessages(rows[:n])
		batch := pipeline.Batch{Pool: pipeline.NewBufferPool(pipeline.DefaultBufferPoolBytes)}
		acks := newLaggedAcks(pipeline.DefaultMaxPendingBatches)
		run := func() {
			batch.Reset(msgs)
			mustProcess(t, &batch, c.stages()...)
			acks.sent(&batch)
		}
		for range 8 { // warm the pool, the reused slices and the pseudonym cache
			run()
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		allocs = testing.AllocsPerRun(20, run)
		runtime.ReadMemStats(&after)
		return allocs, float64(after.TotalAlloc-before.TotalAlloc) / 21 // AllocsPerRun runs once more to warm up
	}
	smallAllocs, smallBytes := measure(64)
	allocs, bytes := measure(1024)
	if allocs > smallAllocs+2 {
		t.Fatalf("a batch of 1,024 allocates %.0f times, one of 64 %.0f: something allocates per event", allocs, smallAllocs)
	}
	const maxAllocs, maxBytes = 96, 12 << 10
	if allocs > maxAllocs || bytes > maxBytes {
		t.Fatalf("a batch of 1,024 allocates %.0f times, %.0f bytes; want at most %d and %d bytes (the per-batch buffers must come from the pool)", allocs, bytes, maxAllocs, maxBytes)
	}
	t.Logf("allocations per batch: %.0f, %.0f bytes (64 events); %.0f, %.0f bytes (1,024 events)", smallAllocs, smallBytes, allocs, bytes)
}
