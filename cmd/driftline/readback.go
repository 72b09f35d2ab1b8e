package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/pipeline"
)

// readBackResult is what reading the output topics back found.
type readBackResult struct {
	predictions, dlq int64
	// lost counts valid events without a prediction plus malformed rows
	// without a DLQ record.
	lost int64
	// duplicatePredictions counts predictions beyond the first per event
	// (at-least-once redelivery after a crash).
	duplicatePredictions int64
	// dlqWithoutReason counts DLQ records missing a reason, stage or
	// source offset header.
	dlqWithoutReason int64
	// duplicateDLQ counts DLQ records beyond the first per source position.
	duplicateDLQ int64
	piiLeaks     int64
}

// plaintextPII matches the synthetic stream's plaintext PII: user ids,
// e-mail addresses and phone numbers.
var plaintextPII = regexp.MustCompile(`u-\d{6}|@example\.com|\+1-555-\d{3}-\d{4}`)

// readBack reads the predictions and DLQ topics from the start to their
// current end and checks them against what the producer wrote: every valid
// event must have a prediction, every malformed row a DLQ record, and no
// record may carry plaintext PII. It counts what is missing as lost.
func readBack(ctx context.Context, cc kafka.ClientConfig, spec *pipeline.Spec, stats *producerStats) (readBackResult, error) {
	return readBackWith(ctx, cc, spec, stats, false)
}

// readBackCommitted is readBack as a consumer of an exactly-once pipeline
// sees the topics: with read-committed isolation, up to the last stable
// offset, so aborted transactions' records are not counted.
func readBackCommitted(ctx context.Context, cc kafka.ClientConfig, spec *pipeline.Spec, stats *producerStats) (readBackResult, error) {
	return readBackWith(ctx, cc, spec, stats, true)
}

func readBackWith(ctx context.Context, cc kafka.ClientConfig, spec *pipeline.Spec, stats *producerStats, committed bool) (readBackResult, error) {
	var res readBackResult
	predicted := map[int64]int{}
	dlqAt := map[string]bool{}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	err := kafka.ReadTopics(ctx, cc, committed, func(r *kafka.Record) error {
		if plaintextPII.Match(r.Value) || plaintextPII.Match(r.Key) {
			res.piiLeaks++
		}
		switch r.Topic {
		case spec.Topics.Predictions:
			res.predictions++
			var p struct {
				EventID string `json:"event_id"`
			}
			if json.Unmarshal(r.Value, &p) == nil {
				if idx, ok := eventIndex(p.EventID); ok {
					predicted[idx]++
					if predicted[idx] > 1 {
						res.duplicatePredictions++
					}
				}
			}
		case spec.Topics.DLQ:
			res.dlq++
			var part, off, reason, stage string
			for _, h := range r.Headers {
				switch h.Key {
				case pipeline.HeaderSourcePart:
					part = string(h.Value)
				case pipeline.HeaderSourceOffset:
					off = string(h.Value)
				case pipeline.HeaderReason:
					reason = string(h.Value)
				case pipeline.HeaderStage:
					stage = string(h.Value)
				}
			}
			if reason == "" || stage == "" || off == "" {
				res.dlqWithoutReason++
			}
			if dlqAt[part+"/"+off] {
				res.duplicateDLQ++
			}
			dlqAt[part+"/"+off] = true
		}
		return nil
	}, spec.Topics.Predictions, spec.Topics.DLQ)
	if err != nil {
		return res, fmt.Errorf("read back: %w", err)
	}
	stats.mu.Lock()
	defer stats.mu.Unlock()
	for w, word := range stats.validIndex {
		for bit := 0; bit < 64; bit++ {
			if word&(1<<bit) != 0 && predicted[int64(w*64+bit)] == 0 {
				res.lost++
			}
		}
	}
	for at := range stats.malformedAt {
		if !dlqAt[at] {
			res.lost++
		}
	}
	return res, nil
}

// eventIndex parses the index out of a synthetic event id "e-<seed>-<index>".
func eventIndex(id string) (int64, bool) {
	i := strings.LastIndexByte(id, '-')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(id[i+1:], 10, 64)
	return n, err == nil
}
