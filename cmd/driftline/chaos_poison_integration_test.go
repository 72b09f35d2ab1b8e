//go:build integration

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/streams"
	"github.com/driftline/driftline/testkit/streams/feed"
)

// TestChaosPoisonPill is the poison pill on a real broker and
// redis-server: while `driftline run` (the built binary) consumes a
// steady stream, a client that is not driftline writes one malformed
// event of 800,000 bytes, '{' + 'y'*799999, straight into the input
// topic, followed by one valid event in the same partition. The pill's
// encrypted, base64 DLQ copy (about 1,066,700 bytes) is over the DLQ
// topic's max.message.bytes (the broker default, 1,048,588): it used to
// fail the produce and make the process exit, and every restart died on
// the same record. Now the process keeps running, the DLQ holds the
// pill's record truncated to fit with its size and SHA-256 in headers, the
// valid event after it is predicted, and every event of the stream is
// accounted for. The test logs lost, duplicated and the time from the
// pill's write to the next event's prediction; it fails when the process
// exits or anything is lost.
func TestChaosPoisonPill(t *testing.T) {
	const events = 20_000
	broker := kafkatest.StartKafka(t)
	rds := redistest.StartRedis(t)
	spec, specPath := integrationSpec(t, broker, rds.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	bin := buildDriftline(t)
	run := startRun(t, bin, specPath, "run")
	exited := make(chan error, 1)
	go func() { exited <- run.Wait() }()
	alive := func(when string) {
		t.Helper()
		select {
		case err := <-exited:
			t.Fatalf("driftline run exited %s: %v", when, err)
		default:
		}
	}

	// A steady stream (1% malformed, 1% duplicates) runs across the pill.
	stats := &feed.Stats{}
	adm := kadm.NewClient(broker.Client(t))
	produced := produceStreamAhead(t, ctx, broker, adm, spec, events, 2500, stats)
	outputs := func() int64 { return outputCount(t, ctx, adm, spec) }
	waitFor(t, ctx, "the first 2,000 outputs", func() bool { alive("before the pill"); return outputs() >= 2000 })

	// kcat -P: raw records from a plain client, the pill then a valid event
	// in the same partition.
	raw := broker.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	pill := append([]byte{'{'}, bytes.Repeat([]byte{'y'}, 799_999)...)
	gen, err := streams.NewGenerator(streams.Config{Concept: streams.ConceptSEA, Seed: 99})
	if err != nil {
		t.Fatal(err)
	}
	var next streams.Event
	gen.Next(&next)
	next.ID = "after-the-poison-pill"
	res := raw.ProduceSync(ctx,
		&kgo.Record{Topic: spec.Topics.Input, Partition: 0, Key: []byte("pill"), Value: pill},
		&kgo.Record{Topic: spec.Topics.Input, Partition: 0, Key: []byte(next.UserID), Value: streams.AppendJSON(nil, &next)})
	if err := res.FirstErr(); err != nil {
		t.Fatalf("produce the pill: %v", err)
	}
	written := time.Now()
	pillOffset := res[0].Record.Offset

	// The event after the pill is predicted.
	preds := broker.Client(t, kgo.ConsumeTopics(spec.Topics.Predictions), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var nextAfter time.Duration
	for nextAfter == 0 {
		alive("after the pill")
		fs := preds.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("the event after the pill was never predicted (outputs %d)", outputs())
		}
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Key) == next.ID {
				nextAfter = time.Since(written)
			}
		})
	}
	if err := <-produced; err != nil {
		t.Fatalf("produce the stream: %v", err)
	}
	waitFor(t, ctx, "the group to commit the whole input", func() bool { alive("while draining"); return committedAll(ctx, adm, spec) })

	// The pill's DLQ record: truncated to fit, with its size and hash.
	var rec *kgo.Record
	dlq := broker.Client(t, kgo.ConsumeTopics(spec.Topics.DLQ), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for rec == nil {
		fs := dlq.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("no DLQ record for the pill")
		}
		fs.EachRecord(func(r *kgo.Record) {
			if hdr(r, pipeline.HeaderSourcePart) == "0" && hdr(r, pipeline.HeaderSourceOffset) == strconv.FormatInt(pillOffset, 10) {
				rec = r
			}
		})
	}
	sum := sha256.Sum256(pill)
	for key, want := range map[string]string{
		pipeline.HeaderPayloadTruncated: "true",
		pipeline.HeaderPayloadSize:      "800000",
		pipeline.HeaderPayloadSHA256:    hex.EncodeToString(sum[:]),
		pipeline.HeaderStage:            "decode",
		pipeline.HeaderKeyID:            "demo-key-1",
	} {
		if got := hdr(rec, key); got != want {
			t.Errorf("pill's DLQ record: header %s = %q, want %q", key, got, want)
		}
	}
	kept, err := strconv.Atoi(hdr(rec, pipeline.HeaderPayloadKept))
	if err != nil || kept <= 0 || kept >= len(pill) {
		t.Errorf("pill's DLQ record keeps %q bytes, want a prefix", hdr(rec, pipeline.HeaderPayloadKept))
	} else if plain, err := stages.Decrypt(bytes.Repeat([]byte{0xab}, 32), string(rec.Value), []byte(stages.DLQAssociatedData)); err != nil || !bytes.Equal(plain, pill[:kept]) {
		t.Errorf("pill's DLQ payload does not decrypt to the pill's first %d bytes: %v", kept, err)
	}

	check, err := feed.ReadBack(ctx, broker.ClientConfig("readback"), spec, stats)
	if err != nil {
		t.Fatal(err)
	}
	alive("at the end")
	if err := run.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err != nil {
		t.Errorf("driftline run did not exit cleanly on SIGTERM: %v", err)
	}
	t.Logf("poison pill of %d bytes at partition 0 offset %d; DLQ record of %d bytes keeps %d bytes of it; "+
		"stream of %d rows (%d valid, %d malformed, %d duplicates): lost %d, duplicated predictions %d, duplicated DLQ records %d; "+
		"the next event was predicted %s after the pill was written; the process never exited",
		len(pill), pillOffset, len(rec.Value), kept, stats.Rows.Load(), stats.Valid.Load(), stats.Malformed.Load(), stats.Duplicates.Load(),
		check.Lost, check.DuplicatePredictions, check.DuplicateDLQ, nextAfter.Round(time.Millisecond))
	if check.Lost != 0 {
		t.Errorf("lost %d events, want 0", check.Lost)
	}
	if check.DLQ != stats.Malformed.Load()+1 {
		t.Errorf("DLQ has %d records, want the %d malformed rows and the pill", check.DLQ, stats.Malformed.Load())
	}
	if check.DuplicatePredictions != 0 || check.DuplicateDLQ != 0 {
		t.Errorf("duplicated %d predictions and %d DLQ records without a restart, want 0", check.DuplicatePredictions, check.DuplicateDLQ)
	}
	if check.PIILeaks != 0 {
		t.Errorf("%d output records carry plaintext PII", check.PIILeaks)
	}
}

// hdr is the value of r's header key ("" when absent).
func hdr(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
