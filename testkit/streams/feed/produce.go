// Package feed writes testkit's seeded streams to Kafka, with malformed
// rows, duplicates and delayed labels (driftline produce and demo, and the
// integration tests), checks a pipeline's outputs against what was written
// (the demo's read-back), and draws a stream into memory for driftline
// eval.
package feed

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/streams"
)

// Config configures the synthetic load generator.
type Config struct {
	Topic       string
	LabelsTopic string // "" writes no labels
	Stream      streams.Config
	// Scenario, when set, writes an example pipeline's events instead of
	// Stream's (streams.NewScenario); its labels' delays are its
	// LabelScale times LabelDelay, plus the jitter.
	Scenario streams.Scenario
	// Events bounds the rows written (0: until ctx ends).
	Events int64
	// Rate is rows per second (0: as fast as the brokers take them).
	Rate float64
	// RampRows, when set with RampRate, are the first rows, written at
	// RampRate rows per second instead of Rate (a warm-up).
	RampRows int64
	RampRate float64
	// MalformedRate and DuplicateRate are the shares of rows that are
	// corrupted copies of a fresh event, or repeats of the previous event.
	MalformedRate, DuplicateRate float64
	// LabelDelay is how long after its event a label is written; each label
	// gets an extra uniform jitter in [0, LabelJitter).
	LabelDelay, LabelJitter time.Duration
	// Encoder writes Stream's events, labels and keys; nil writes the
	// stream's own JSON (a SchemaEncoder writes a spec's schema). A
	// Scenario writes its own.
	Encoder Encoder
	// Taken, when set, is how many rows and label records the consumer
	// has taken so far; Produce waits (writing the labels that fall due)
	// while it has handed the brokers more than MaxBacklog rows, or label
	// records, beyond those, so that a producer faster than its pipeline
	// holds a bounded backlog instead of filling the brokers. It is called
	// every few rows from Produce's goroutine.
	Taken      func() (rows, labels int64)
	MaxBacklog int64
}

func (c *Config) Validate() error {
	if c.Topic == "" {
		return errors.New("--topic is required")
	}
	if c.MalformedRate < 0 || c.DuplicateRate < 0 || c.MalformedRate+c.DuplicateRate >= 1 {
		return errors.New("--malformed and --duplicates must be ≥ 0 and sum below 1")
	}
	if c.Rate < 0 || c.Events < 0 {
		return errors.New("--rate and --events must not be negative")
	}
	if c.Taken != nil && c.MaxBacklog < 1 {
		return fmt.Errorf("max backlog must be at least 1 with a taken function, got %d", c.MaxBacklog)
	}
	if c.RampRows < 0 || c.RampRate < 0 {
		return errors.New("the ramp's rows and rate must not be negative")
	}
	if c.Scenario != nil {
		return nil
	}
	return c.Stream.Validate()
}

// Stats counts what the producer wrote: the rows and labels the brokers
// acknowledged (Rows is Valid + Malformed + Duplicates), and the records
// that failed (Errors, rows and labels), which are not among the others.
// Valid event indexes and malformed rows' positions are kept, when
// Config.Events bounds the run, so that it can be checked for loss.
type Stats struct {
	Rows, Valid, Malformed, Duplicates, Labels, Errors atomic.Int64

	mu sync.Mutex
	// pii matches the plaintext personal data the events carry.
	pii interface{ Match([]byte) bool }
	// validIndex has bit i set when event i was written valid.
	validIndex []uint64
	// malformedAt holds "partition/offset" of every malformed row.
	malformedAt map[string]struct{}
}

func (s *Stats) markValid(i int64) {
	s.mu.Lock()
	for int64(len(s.validIndex))*64 <= i {
		s.validIndex = append(s.validIndex, 0)
	}
	s.validIndex[i/64] |= 1 << (i % 64)
	s.mu.Unlock()
}

// Produce writes rows (and delayed labels) until cfg.Events rows are
// written or ctx ends, then flushes. It is safe to read stats meanwhile.
func Produce(ctx context.Context, cl *kafka.Producer, cfg Config, stats *Stats) error {
	var gen source = cfg.Scenario
	seed := cfg.Stream.Seed
	stats.mu.Lock()
	stats.pii = plaintextPII
	if cfg.Scenario != nil {
		stats.pii = cfg.Scenario.PII()
	} else {
		g, err := streams.NewGenerator(cfg.Stream)
		if err != nil {
			stats.mu.Unlock()
			return err
		}
		enc := cfg.Encoder
		if enc == nil {
			enc = streamEncoder{}
		}
		gen = &streamSource{gen: g, enc: enc}
	}
	stats.malformedAt = map[string]struct{}{}
	stats.mu.Unlock()
	rng := rand.New(rand.NewPCG(seed, 0x6472696674))
	labels := &labelQueue{}
	var (
		ev, prev streams.ScenarioEvent
		havePrev bool
		sent     int64
		start    = time.Now()
		firstErr atomic.Value
	)
	// acked counts a record into its counters once the brokers took it.
	acked := func(err error, counters ...*atomic.Int64) bool {
		if err != nil {
			stats.Errors.Add(1)
			firstErr.CompareAndSwap(nil, err)
			return false
		}
		for _, c := range counters {
			c.Add(1)
		}
		return true
	}
	onLabel := func(_ kafka.Produced, err error) { acked(err, &stats.Labels) }
	// A bounded run keeps what ReadBack checks (valid indexes, malformed
	// positions); an unbounded one only counts, in constant memory.
	track := cfg.Events > 0
	for cfg.Events == 0 || sent < cfg.Events {
		if ctx.Err() != nil {
			break
		}
		if cfg.Rate > 0 {
			due := start.Add(cfg.dueAfter(sent))
			if d := time.Until(due); d > time.Millisecond {
				select {
				case <-time.After(d):
				case <-ctx.Done():
				}
			}
		}
		flushLabels(ctx, cl, labels, time.Now(), onLabel, cfg.LabelsTopic)
		if cfg.Taken != nil && sent%backlogEvery == 0 {
			waitBacklog(ctx, cl, cfg, sent, labels, onLabel)
		}
		sent++
		p := rng.Float64()
		if havePrev && p < cfg.DuplicateRate {
			cl.Produce(ctx, pipeline.OutRecord{Topic: cfg.Topic, Key: prev.Key, Value: prev.Value}, func(_ kafka.Produced, err error) {
				acked(err, &stats.Rows, &stats.Duplicates)
			})
			continue
		}
		ev = streams.ScenarioEvent{}
		gen.Next(&ev)
		row := ev.Value
		if p < cfg.DuplicateRate+cfg.MalformedRate {
			bad, _ := streams.Corrupt(rng, row)
			cl.Produce(ctx, pipeline.OutRecord{Topic: cfg.Topic, Key: ev.Key, Value: bad}, func(r kafka.Produced, err error) {
				if acked(err, &stats.Rows, &stats.Malformed) && track {
					stats.mu.Lock()
					stats.malformedAt[fmt.Sprintf("%d/%d", r.Partition, r.Offset)] = struct{}{}
					stats.mu.Unlock()
				}
			})
			continue
		}
		idx := gen.Index() - 1
		cl.Produce(ctx, pipeline.OutRecord{Topic: cfg.Topic, Key: ev.Key, Value: row}, func(_ kafka.Produced, err error) {
			if acked(err, &stats.Rows, &stats.Valid) && track {
				stats.markValid(idx)
			}
		})
		prev, havePrev = ev, true
		if cfg.LabelsTopic != "" && ev.Label != nil {
			delay := time.Duration(float64(cfg.LabelDelay) * ev.LabelScale)
			if cfg.LabelJitter > 0 {
				delay += time.Duration(rng.Int64N(int64(cfg.LabelJitter)))
			}
			labels.push(pendingLabel{due: time.Now().Add(delay), key: []byte(ev.ID), value: ev.Label})
		}
	}
	// Labels still pending are written at their due time, unless ctx ends.
	for labels.Len() > 0 && ctx.Err() == nil {
		wait := time.Until(labels.q[0].due)
		if wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
		}
		flushLabels(ctx, cl, labels, time.Now(), onLabel, cfg.LabelsTopic)
	}
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := cl.Flush(flushCtx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	if err, _ := firstErr.Load().(error); err != nil {
		return fmt.Errorf("produce: %d records failed, first: %w", stats.Errors.Load(), err)
	}
	return nil
}

// A producer with a backlog bound looks at its backlog every backlogEvery
// rows (it may overshoot the bound by as many), and every backlogPoll while
// held back.
const (
	backlogEvery = 64
	backlogPoll  = 5 * time.Millisecond
)

// waitBacklog waits while the rows (of sent) or the labels written are
// more than cfg.MaxBacklog ahead of cfg.Taken, or until ctx ends, writing
// the labels that fall due meanwhile.
func waitBacklog(ctx context.Context, cl *kafka.Producer, cfg Config, sent int64, labels *labelQueue, onLabel func(kafka.Produced, error)) {
	for ctx.Err() == nil {
		rows, taken := cfg.Taken()
		if sent-rows <= cfg.MaxBacklog && labels.written-taken <= cfg.MaxBacklog {
			return
		}
		select {
		case <-time.After(backlogPoll):
		case <-ctx.Done():
		}
		flushLabels(ctx, cl, labels, time.Now(), onLabel, cfg.LabelsTopic)
	}
}

// source is what Produce writes: a concept stream or a scenario.
type source interface {
	Next(e *streams.ScenarioEvent)
	Index() int64
}

// streamSource writes a streams.Generator's events as scenario events,
// encoded by enc.
type streamSource struct {
	gen *streams.Generator
	enc Encoder
	ev  streams.Event
}

func (s *streamSource) Next(e *streams.ScenarioEvent) {
	s.gen.Next(&s.ev)
	e.ID, e.Key = s.ev.ID, s.enc.Key(&s.ev)
	e.Value = s.enc.AppendEvent(nil, &s.ev)
	e.Label, e.LabelScale = s.enc.AppendLabel(nil, &s.ev), 1
}

func (s *streamSource) Index() int64 { return s.gen.Index() }

// dueAfter is when row sent is due, counted from the start.
func (c *Config) dueAfter(sent int64) time.Duration {
	at := func(rows int64, rate float64) time.Duration {
		return time.Duration(float64(rows) / rate * float64(time.Second))
	}
	if c.RampRows <= 0 || c.RampRate <= 0 {
		return at(sent, c.Rate)
	}
	if sent < c.RampRows {
		return at(sent, c.RampRate)
	}
	return at(c.RampRows, c.RampRate) + at(sent-c.RampRows, c.Rate)
}

func flushLabels(ctx context.Context, cl *kafka.Producer, q *labelQueue, now time.Time, onDone func(kafka.Produced, error), topic string) {
	for q.Len() > 0 && !q.q[0].due.After(now) {
		l := q.pop()
		cl.Produce(ctx, pipeline.OutRecord{Topic: topic, Key: l.key, Value: l.value}, onDone)
	}
}

type pendingLabel struct {
	due        time.Time
	key, value []byte
}

// labelQueue is a min-heap of labels by due time. It is typed rather than
// a container/heap.Interface, which boxed every label in an interface on
// push and pop (two allocations per label, in the demo's producer); the
// order is container/heap's (TestLabelQueuePopsInDueOrder).
// written counts the labels taken out to be written.
type labelQueue struct {
	q       []pendingLabel
	written int64
}

func (q *labelQueue) Len() int { return len(q.q) }

// push adds l.
func (q *labelQueue) push(l pendingLabel) {
	q.q = append(q.q, l)
	for i := len(q.q) - 1; i > 0; {
		p := (i - 1) / 2
		if !q.q[i].due.Before(q.q[p].due) {
			break
		}
		q.q[i], q.q[p] = q.q[p], q.q[i]
		i = p
	}
}

// pop removes the label due first, counts it as written and returns it.
// The queue must not be empty.
func (q *labelQueue) pop() pendingLabel {
	n := len(q.q) - 1
	l := q.q[0]
	q.q[0] = q.q[n]
	q.q[n] = pendingLabel{} // drop the slot's references
	q.q = q.q[:n]
	for i := 0; ; {
		c := 2*i + 1
		if c >= n {
			break
		}
		if r := c + 1; r < n && q.q[r].due.Before(q.q[c].due) {
			c = r
		}
		if !q.q[c].due.Before(q.q[i].due) {
			break
		}
		q.q[i], q.q[c] = q.q[c], q.q[i]
		i = c
	}
	q.written++
	return l
}
