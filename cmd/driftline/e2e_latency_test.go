//go:build integration

package main

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/testkit/kafkatest"
)

// e2eReadLimit bounds a warm-up poll, a readiness wait or a read-back.
const e2eReadLimit = 60 * time.Second

// setLogAppendTime makes the broker stamp each record of topics with the
// time it appended it (message.timestamp.type=LogAppendTime).
func setLogAppendTime(tb testing.TB, ctx context.Context, broker *kafkatest.Broker, topics ...string) {
	tb.Helper()
	adm := kadm.NewClient(broker.Client(tb))
	resps, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "message.timestamp.type", Value: kadm.StringPtr("LogAppendTime")}}, topics...)
	if err == nil {
		for _, r := range resps {
			if r.Err != nil {
				err = r.Err
			}
		}
	}
	if err != nil {
		tb.Fatalf("set LogAppendTime on %v: %v", topics, err)
	}
}

// warmBroker pays the broker's first-use costs before anything is timed:
// one throwaway consumer-group join on topic in, polled until a record
// arrives, and one throwaway record produced to each of outs.
func warmBroker(tb testing.TB, ctx context.Context, broker *kafkatest.Broker, in string, outs ...string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(ctx, e2eReadLimit)
	defer cancel()
	cl, err := broker.ClientConfig("warmup").NewFranzClient(kgo.ConsumerGroup(uniqueName("warmup")), kgo.ConsumeTopics(in),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		tb.Fatal(err)
	}
	defer cl.Close() // leaves the group
	for got := false; !got; {
		fetches := cl.PollRecords(ctx, 1)
		if err := ctx.Err(); err != nil {
			tb.Fatalf("warm-up: no record from %s within %s", in, e2eReadLimit)
		}
		got = fetches.NumRecords() > 0
	}
	for _, t := range outs {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: t, Value: []byte(`{"warmup":true}`)}).FirstErr(); err != nil {
			tb.Fatalf("warm-up produce to %s: %v", t, err)
		}
	}
}

// e2eLatency is one side's latency run.
type e2eLatency struct {
	p50, p99 float64 // milliseconds
	// achieved is the load's rate as the broker appended it: input rows
	// over the span of their append times.
	achieved float64
	matched  int
	// generatorCPU is the CPU time the load generator's process used;
	// sideCPU the CPU time the measured process (the side) used meanwhile,
	// and runQueueWait how long its threads waited for a CPU (runQueueWait's
	// sum over threads).
	generatorCPU, sideCPU, runQueueWait time.Duration
}

// measureLatency runs side on a fresh input topic (and a fresh labels
// topic for a labelled side), waits until its group has its partitions,
// then writes the stream at rate rows/s for d from a load generator
// process of its own (produceLabelledStream) and waits until the side has
// done every row. An event's latency is its output record's timestamp
// minus its input record's, both stamped by the broker on append
// (LogAppendTime): the span from the input being readable to the output
// being durable, on one clock, without the load generator's own batching
// or the read-back's delay. Outputs are matched to inputs by event id
// (the first input of a duplicated id): driftline's predictions are the
// valid events; the passthrough's copies also hold the duplicates and
// the malformed rows whose id can still be read. Outputs and inputs are read back after the run, so that the
// read-back does not load the machine while the side is measured.
func measureLatency(b *testing.B, ctx context.Context, broker *kafkatest.Broker, side e2eSide, rate float64, d time.Duration) e2eLatency {
	in, labels := uniqueName("latency-"+side.name), ""
	broker.CreateTopic(b, in, 4)
	if side.labelled {
		labels = in + "-labels"
		broker.CreateTopic(b, labels, 4)
	}
	setLogAppendTime(b, ctx, broker, in)
	cl := broker.Client(b)
	run := side.start(b, in, labels)
	deadline := time.Now().Add(e2eReadLimit)
	for !run.Ready() {
		if time.Now().After(deadline) {
			_ = run.Stop()
			b.Fatalf("%s: not ready within %s", side.name, e2eReadLimit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	from := endOffsets(b, ctx, cl, side.out)
	waited, cpu := runQueueWait(), mustProcessCPU(b)
	stats := produceLabelledStream(b, ctx, broker.Addr, in, labels, int64(rate*d.Seconds()), rate)
	waitDone(b, ctx, side.name, run, stats.Rows)
	waited, cpu = runQueueWait()-waited, mustProcessCPU(b)-cpu
	if err := run.Stop(); err != nil {
		b.Fatalf("%s: %v", side.name, err)
	}
	to := endOffsets(b, ctx, cl, side.out)

	appended := map[string]time.Time{}
	var first, last time.Time
	readRange(b, ctx, broker, in, nil, endOffsets(b, ctx, cl, in), func(r *kgo.Record) {
		if first.IsZero() || r.Timestamp.Before(first) {
			first = r.Timestamp
		}
		if r.Timestamp.After(last) {
			last = r.Timestamp
		}
		id := inputEventID(r.Value)
		if t, ok := appended[id]; id != "" && (!ok || r.Timestamp.Before(t)) {
			appended[id] = r.Timestamp
		}
	})
	var lat []time.Duration
	readRange(b, ctx, broker, side.out, from, to, func(r *kgo.Record) {
		if t, ok := appended[side.eventID(r.Key, r.Value)]; ok {
			lat = append(lat, r.Timestamp.Sub(t))
		}
	})
	if len(lat) < int(stats.Valid) {
		b.Fatalf("%s: %d outputs matched an input, want at least the %d valid events", side.name, len(lat), stats.Valid)
	}
	slices.Sort(lat)
	ms := func(q float64) float64 {
		return float64(lat[int(q*float64(len(lat)-1)+0.5)]) / float64(time.Millisecond)
	}
	return e2eLatency{p50: ms(0.50), p99: ms(0.99), matched: len(lat), generatorCPU: stats.CPU, runQueueWait: waited, sideCPU: cpu,
		achieved: float64(stats.Rows) / max(last.Sub(first), time.Millisecond).Seconds()}
}

// mustProcessCPU is processCPU, failing tb on an error.
func mustProcessCPU(tb testing.TB) time.Duration {
	cpu, err := processCPU()
	if err != nil {
		tb.Fatal(err)
	}
	return cpu
}

// inputEventID is the event_id of a stream row as streams.AppendJSON
// writes it ({"event_id":"…",…}, no escapes in an id), or "" for a row
// without one. A scan, not a JSON decode: the read-back of a latency run
// decodes hundreds of thousands of rows on a shared machine.
func inputEventID(value []byte) string {
	const field = `"event_id":"`
	i := bytes.Index(value, []byte(field))
	if i < 0 {
		return ""
	}
	id := value[i+len(field):]
	end := bytes.IndexByte(id, '"')
	if end < 0 {
		return ""
	}
	return string(id[:end])
}

// readRange reads topic's records in [from[p], to[p]) of every partition
// p of to (from nil: from the start) and hands each to fn, within
// e2eReadLimit.
func readRange(tb testing.TB, ctx context.Context, broker *kafkatest.Broker, topic string, from, to map[int32]int64, fn func(*kgo.Record)) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(ctx, e2eReadLimit)
	defer cancel()
	parts := map[int32]kgo.Offset{}
	left := 0
	for p, end := range to {
		if from[p] < end {
			parts[p] = kgo.NewOffset().At(from[p])
			left++
		}
	}
	if left == 0 {
		return
	}
	cl := broker.Client(tb, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))
	defer cl.Close()
	for left > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			tb.Fatalf("read back %s: %d partitions unfinished within %s", topic, left, e2eReadLimit)
		}
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			for _, r := range fp.Records {
				if r.Offset >= to[fp.Partition] {
					break
				}
				fn(r)
				if r.Offset == to[fp.Partition]-1 {
					left--
				}
			}
		})
	}
}
