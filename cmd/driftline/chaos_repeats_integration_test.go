//go:build integration

package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/streams/feed"
)

// explainRepeats logs where the outputs that a read-committed reader saw
// more than once lie: for a few repeated predictions (by event id) and
// DLQ records (by source position), every committed copy's partition,
// offset, producer id and epoch and the marker that committed it; then,
// per transaction that holds a repeated copy, how many of its records are
// repeats, and the aborted transactions per producer epoch. It reads the
// whole log (aborted records and control markers included) with
// kafkatest.ReadTxnLog.
func explainRepeats(t *testing.T, ctx context.Context, broker *kafkatest.Broker, spec *pipeline.Spec) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	recs, err := broker.ReadTxnLog(t, ctx, spec.Topics.Predictions, spec.Topics.DLQ)
	if err != nil {
		t.Logf("explain repeats: %v", err)
		return
	}
	copies := map[string][]int{} // output identity -> indexes of its committed copies
	var order []string
	for i := range recs {
		r := &recs[i]
		if !r.Committed() {
			continue
		}
		id := outputIdentity(spec, r)
		if id == "" {
			continue
		}
		if len(copies[id]) == 1 {
			order = append(order, id)
		}
		copies[id] = append(copies[id], i)
	}
	t.Logf("explain repeats: %d records in the log, %d outputs committed more than once", len(recs), len(order))
	shown := map[string]int{}
	for _, id := range order {
		kind, _, _ := strings.Cut(id, " ")
		if shown[kind] >= 5 {
			continue
		}
		shown[kind]++
		var lines []string
		for _, i := range copies[id] {
			lines = append(lines, "    "+recs[i].String())
		}
		t.Logf("  %s:\n%s", id, strings.Join(lines, "\n"))
	}

	// Per transaction (partition, producer, marker): its records and their
	// epochs, how many are a repeated output's first copy and how many a
	// later one.
	type txn struct {
		topic          string
		part           int32
		pid            int64
		epochs         [2]int16 // the lowest and highest epoch of its records
		marker         string
		markerOffset   int64
		first, last    int64
		records        int
		repeatedFirst  int
		repeatedLater  int
		withRepeatedID bool
	}
	txns := map[string]*txn{}
	key := func(r *kafkatest.TxnRecord) string {
		return fmt.Sprintf("%s/%d p%d m%d", r.Topic, r.Partition, r.ProducerID, r.MarkerOffset)
	}
	for i := range recs {
		r := &recs[i]
		k := key(r)
		x := txns[k]
		if x == nil {
			x = &txn{topic: r.Topic, part: r.Partition, pid: r.ProducerID, epochs: [2]int16{r.ProducerEpoch, r.ProducerEpoch}, marker: r.Marker, markerOffset: r.MarkerOffset, first: r.Offset}
			txns[k] = x
		}
		x.epochs = [2]int16{min(x.epochs[0], r.ProducerEpoch), max(x.epochs[1], r.ProducerEpoch)}
		x.records++
		x.last = r.Offset
	}
	for _, id := range order {
		for n, i := range copies[id] {
			x := txns[key(&recs[i])]
			x.withRepeatedID = true
			if n == 0 {
				x.repeatedFirst++
			} else {
				x.repeatedLater++
			}
		}
	}
	list := slices.SortedFunc(maps.Values(txns), func(a, b *txn) int {
		return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.part, b.part), cmp.Compare(a.first, b.first))
	})
	var lines []string
	aborted := map[string]int{}
	for _, x := range list {
		if x.marker == "abort" {
			aborted[fmt.Sprintf("producer %d epochs %d-%d", x.pid, x.epochs[0], x.epochs[1])] += x.records
		}
		if !x.withRepeatedID {
			continue
		}
		// Records of more than one epoch under one marker: an earlier
		// transaction of the producer id lost its marker there.
		lines = append(lines, fmt.Sprintf("    %s/%d @%d-%d producer %d epochs %d-%d, %s marker @%d: %d records, %d first copies, %d later copies of a repeated output",
			x.topic, x.part, x.first, x.last, x.pid, x.epochs[0], x.epochs[1], cmp.Or(x.marker, "no"), x.markerOffset, x.records, x.repeatedFirst, x.repeatedLater))
	}
	if len(lines) > 40 {
		lines = append(lines[:40], fmt.Sprintf("    ... %d more", len(lines)-40))
	}
	t.Logf("explain repeats: transactions holding a repeated output's copy:\n%s", strings.Join(lines, "\n"))
	t.Logf("explain repeats: aborted records per producer epoch: %v", aborted)
}

// outputIdentity names the input a committed output answers: the event id
// of a prediction, the source position of a DLQ record; "" for other
// records.
func outputIdentity(spec *pipeline.Spec, r *kafkatest.TxnRecord) string {
	switch r.Topic {
	case spec.Topics.Predictions:
		var p struct {
			EventID string `json:"event_id"`
		}
		if json.Unmarshal(r.Value, &p) == nil && p.EventID != "" {
			return "prediction " + p.EventID
		}
	case spec.Topics.DLQ:
		if h := feed.ReadDLQHeaders(r.Headers); h.Offset != "" {
			return "dlq input " + h.Partition + "@" + h.Offset
		}
	}
	return ""
}

// keepBrokerLog runs at the test's end, before the broker's own clean-up
// removes its log: when the test failed, it prints the log's lines about
// transactions the broker aborted for their timeout, its own fencing and
// transaction markers it dropped (brokerTxnNotes); with
// $DRIFTLINE_CHAOS_LOGS set, it copies the whole log there, next to the
// driftline run log startChaosRun keeps.
func keepBrokerLog(t *testing.T, broker *kafkatest.Broker) {
	if broker.LogPath == "" {
		return
	}
	t.Cleanup(func() {
		b, err := os.ReadFile(broker.LogPath)
		if err != nil {
			t.Logf("read the broker log: %v", err)
			return
		}
		if t.Failed() {
			t.Logf("the broker log's timeout aborts, fences and dropped transaction markers:\n%s", brokerTxnNotes(string(b)))
		}
		if dir := os.Getenv("DRIFTLINE_CHAOS_LOGS"); dir != "" {
			_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-broker-%d.log", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().Unix())), b, 0o644)
		}
	})
}

// brokerTxnNotes picks the lines of a Kafka broker log that explain
// exactly-once faults after a restart: transactions aborted for their
// timeout, the broker fenced, and transaction markers dropped because a
// partition had no leader. Kafka 4.4 takes such a partition for deleted
// and completes the transaction without its marker there, so the same
// producer id's next commit also commits the records an abort should have
// removed (RELIABILITY.md, "Known issue").
func brokerTxnNotes(log string) string {
	var notes []string
	for line := range strings.Lines(log) {
		if strings.Contains(line, "Couldn't find leader endpoint") || strings.Contains(line, "due to timeout") ||
			strings.Contains(line, "because its session has timed out") || strings.Contains(line, "DUPLICATE_BROKER_REGISTRATION") {
			notes = append(notes, "    "+strings.TrimSpace(line))
		}
	}
	return strings.Join(notes, "\n")
}
