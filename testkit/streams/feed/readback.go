package feed

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/pipeline"
)

// Check is what reading the output topics back found.
type Check struct {
	Predictions, DLQ int64
	// Lost counts valid events without a prediction plus malformed rows
	// without a DLQ record.
	Lost int64
	// DuplicatePredictions counts predictions beyond the first per event
	// (at-least-once redelivery after a crash).
	DuplicatePredictions int64
	// DLQWithoutReason counts DLQ records missing a reason, stage or
	// source offset header.
	DLQWithoutReason int64
	// DuplicateDLQ counts DLQ records beyond the first per source position.
	DuplicateDLQ int64
	PIILeaks     int64
}

// plaintextPII matches the synthetic stream's plaintext PII: user ids,
// e-mail addresses and phone numbers.
var plaintextPII syntheticPII

// syntheticPII matches what the regular expression
// `u-\d{6}|@example\.com|\+1-555-\d{3}-\d{4}` matches, by hand: read-back
// checks every output record, and the regexp took 30% of a demo's CPU.
type syntheticPII struct{}

// Match reports whether b holds a user id, an @example.com address or a
// +1-555 phone number.
func (syntheticPII) Match(b []byte) bool {
	if bytes.Contains(b, []byte("@example.com")) {
		return true
	}
	for i := 0; ; {
		k := bytes.Index(b[i:], []byte("u-"))
		if k < 0 {
			break
		}
		if digits(b[i+k+2:], 6) {
			return true
		}
		i += k + 1
	}
	for i := 0; ; {
		k := bytes.Index(b[i:], []byte("+1-555-"))
		if k < 0 {
			return false
		}
		if rest := b[i+k+7:]; digits(rest, 3) && len(rest) > 3 && rest[3] == '-' && digits(rest[4:], 4) {
			return true
		}
		i += k + 1
	}
}

// digits reports whether b starts with n ASCII digits.
func digits(b []byte, n int) bool {
	if len(b) < n {
		return false
	}
	for _, c := range b[:n] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// ReadBack reads the predictions and DLQ topics from the start to their
// current end and checks them against what the producer wrote: every valid
// event must have a prediction, every malformed row a DLQ record, and no
// record may carry plaintext PII (the synthetic stream's, or every value a
// scenario wrote, free text included). It counts what is missing as lost.
func ReadBack(ctx context.Context, cc kafka.ClientConfig, spec *pipeline.Spec, stats *Stats) (Check, error) {
	return readBackWith(ctx, cc, spec, stats, false)
}

// ReadBackCommitted is ReadBack as a consumer of an exactly-once pipeline
// sees the topics: with read-committed isolation, up to the last stable
// offset, so aborted transactions' records are not counted.
func ReadBackCommitted(ctx context.Context, cc kafka.ClientConfig, spec *pipeline.Spec, stats *Stats) (Check, error) {
	return readBackWith(ctx, cc, spec, stats, true)
}

func readBackWith(ctx context.Context, cc kafka.ClientConfig, spec *pipeline.Spec, stats *Stats, committed bool) (Check, error) {
	var res Check
	predicted := map[int64]int{}
	dlqAt := map[string]bool{}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	stats.mu.Lock()
	var pii interface{ Match([]byte) bool } = plaintextPII
	if stats.pii != nil {
		pii = stats.pii
	}
	stats.mu.Unlock()
	err := kafka.ReadTopics(ctx, cc, committed, func(r *kafka.Record) error {
		if pii.Match(r.Value) || pii.Match(r.Key) {
			res.PIILeaks++
		}
		switch r.Topic {
		case spec.Topics.Predictions:
			res.Predictions++
			if id, ok := predictionEventID(r.Value); ok {
				if idx, ok := EventIndex(id); ok {
					predicted[idx]++
					if predicted[idx] > 1 {
						res.DuplicatePredictions++
					}
				}
			}
		case spec.Topics.DLQ:
			res.DLQ++
			h := ReadDLQHeaders(r.Headers)
			if h.Reason == "" || h.Stage == "" || h.Offset == "" {
				res.DLQWithoutReason++
			}
			if dlqAt[h.Partition+"/"+h.Offset] {
				res.DuplicateDLQ++
			}
			dlqAt[h.Partition+"/"+h.Offset] = true
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
				res.Lost++
			}
		}
	}
	for at := range stats.malformedAt {
		if !dlqAt[at] {
			res.Lost++
		}
	}
	return res, nil
}

// predictionEventID returns a prediction's event_id; ok is false when the
// record is not a JSON object (such a prediction counts as missing). It
// decodes with goccy/go-json, which refuses the same malformed records as
// encoding/json (TestPredictionEventIDRefusesWhatEncodingJSONRefuses) at
// about an eighth of its CPU (BenchmarkPredictionEventID): the read-back
// decodes every prediction after a run, on the demo's critical path.
func predictionEventID(v []byte) (string, bool) {
	var p struct {
		EventID string `json:"event_id"`
	}
	if gojson.Unmarshal(v, &p) != nil {
		return "", false
	}
	return p.EventID, true
}

// DLQHeaders are the headers of a DLQ record that say which input it
// stands for and why it was refused; a missing header is "".
type DLQHeaders struct {
	Partition, Offset string // the input's position (driftline.source.*)
	Reason, Stage     string
}

// ReadDLQHeaders picks a DLQ record's DLQHeaders out of its headers.
func ReadDLQHeaders(hs []pipeline.Header) DLQHeaders {
	var d DLQHeaders
	for _, h := range hs {
		switch h.Key {
		case pipeline.HeaderSourcePart:
			d.Partition = string(h.Value)
		case pipeline.HeaderSourceOffset:
			d.Offset = string(h.Value)
		case pipeline.HeaderReason:
			d.Reason = string(h.Value)
		case pipeline.HeaderStage:
			d.Stage = string(h.Value)
		}
	}
	return d
}

// EventIndex parses the index out of a synthetic event id "e-<seed>-<index>".
func EventIndex(id string) (int64, bool) {
	i := strings.LastIndexByte(id, '-')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(id[i+1:], 10, 64)
	return n, err == nil
}
