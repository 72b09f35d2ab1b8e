package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/internal/app"
	"github.com/driftline/driftline/testkit/streams"
	"github.com/driftline/driftline/testkit/streams/feed"
)

// streamFlags are the synthetic-stream flags shared by produce and demo.
type streamFlags struct {
	concept   string
	seed      uint64
	driftKind string
	driftAt   int64
	width     int64
	noise     float64
	// variant and driftTo are concept A and B (SEA variant 0..3, Agrawal
	// function 0..9); driftTo -1 takes the generator's default B.
	variant, driftTo int
	shift            streams.Shift // --shift (demo)
}

func (f *streamFlags) register(fs interface {
	StringVar(*string, string, string, string)
	Uint64Var(*uint64, string, uint64, string)
	Int64Var(*int64, string, int64, string)
	Float64Var(*float64, string, float64, string)
	IntVar(*int, string, int, string)
}, defaultDriftAt int64) {
	fs.StringVar(&f.concept, "concept", streams.ConceptSEA, "stream concept: sea, hyperplane or agrawal")
	fs.Uint64Var(&f.seed, "seed", 1, "random seed; the same seed gives the same stream")
	fs.StringVar(&f.driftKind, "drift", "abrupt", "concept drift: none, abrupt or gradual")
	fs.Int64Var(&f.driftAt, "drift-at", defaultDriftAt, "event index where the concept changes (midpoint for gradual)")
	fs.Int64Var(&f.width, "drift-width", 10000, "events over which a gradual drift happens")
	fs.Float64Var(&f.noise, "noise", 0.05, "share of labels flipped at random, in [0, 0.5]")
	fs.IntVar(&f.variant, "variant", 0, "concept before the drift: SEA variant 0-3 (threshold 8, 9, 7, 9.5) or Agrawal function 0-9")
	fs.IntVar(&f.driftTo, "drift-to", -1, "concept after the drift (-1: SEA variant+2 mod 4, Agrawal function+4 mod 10)")
}

func (f *streamFlags) config() streams.Config {
	cfg := streams.Config{
		Concept:      f.concept,
		Seed:         f.seed,
		Noise:        f.noise,
		Drift:        streams.Drift{Kind: streams.DriftKind(f.driftKind), Position: f.driftAt, Width: f.width},
		Start:        time.Now().UTC().Truncate(time.Second),
		Step:         time.Millisecond,
		Variant:      f.variant,
		DriftVariant: f.variant, // equal means the generator's default B
		Shift:        f.shift,
	}
	if f.driftTo >= 0 {
		cfg.DriftVariant = f.driftTo
	}
	return cfg
}

func cmdProduce(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("produce", "--brokers HOST:PORT [flags]", `Write a seeded synthetic event stream (SEA, Hyperplane or Agrawal concepts,
with optional abrupt or gradual drift) as JSON events, with some malformed
and duplicate rows, and write each valid event's label to the labels topic
after a delay. Rows are keyed by user id. Prints progress every second.

With --spec FILE, it writes what that spec reads: events in the spec's
schema to topics.input and labels {id_field, labels.field} to
topics.labels. The stream's attributes become the spec's numeric features
(stages.featurize.numeric, scaled into each field's range), so the label
stays learnable and drifts with the stream; the other fields get values
of their type, enum and PII class. The spec's kafka block says how to
reach the brokers (TLS, SASL, compression; see "Connecting to a secured
cluster" in the README); --brokers overrides its addresses.`, stderr)
	brokers := fs.String("brokers", "", "comma-separated Kafka bootstrap brokers; required without --spec")
	specPath := fs.String("spec", "", "pipeline spec whose kafka block (brokers, TLS, SASL, compression) to connect with")
	topic := fs.String("topic", "", "input topic to write events to (default: the spec's topics.input, else events)")
	labelsTopic := fs.String("labels-topic", "", `topic for delayed labels (default: the spec's topics.labels, else labels; "-" for none)`)
	events := fs.Int64("events", 100000, "rows to write (0: until interrupted)")
	rate := fs.Float64("rate", 10000, "rows per second (0: unlimited)")
	malformed := fs.Float64("malformed", 0.01, "share of malformed rows")
	duplicates := fs.Float64("duplicates", 0.01, "share of duplicate rows")
	labelDelay := fs.Duration("label-delay", 2*time.Second, "delay between an event and its label")
	labelJitter := fs.Duration("label-jitter", time.Second, "extra random label delay, uniform in [0, jitter)")
	var sf streamFlags
	sf.register(fs, 50000)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *brokers == "" && *specPath == "" {
		fmt.Fprintln(stderr, "--brokers or --spec is required")
		fs.Usage()
		return errUsage
	}
	cc := kafka.ClientConfig{ClientID: "driftline-produce"}
	var enc feed.Encoder
	defaultTopics := [2]string{"events", "labels"}
	if *specPath != "" {
		spec, err := app.LoadSpec(*specPath)
		if err != nil {
			return err
		}
		if *brokers != "" {
			spec.Kafka.Brokers = strings.Split(*brokers, ",")
		}
		if cc, err = app.KafkaClient(spec, "driftline-produce"); err != nil {
			return err
		}
		if enc, err = feed.NewSchemaEncoder(spec, sf.concept); err != nil {
			return fmt.Errorf("--spec: %w", err)
		}
		defaultTopics = [2]string{spec.Topics.Input, spec.Topics.Labels}
	} else {
		cc.Brokers = strings.Split(*brokers, ",")
	}
	*topic = cmp.Or(*topic, defaultTopics[0])
	if *labelsTopic = cmp.Or(*labelsTopic, defaultTopics[1]); *labelsTopic == "-" {
		*labelsTopic = ""
	}
	cfg := feed.Config{
		Topic: *topic, LabelsTopic: *labelsTopic, Stream: sf.config(), Events: *events, Rate: *rate,
		MalformedRate: *malformed, DuplicateRate: *duplicates, LabelDelay: *labelDelay, LabelJitter: *labelJitter, Encoder: enc,
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := kafka.Check(ctx, cc); err != nil {
		return err
	}
	cl, err := kafka.NewProducer(kafka.ProducerConfig{Client: cc})
	if err != nil {
		return err
	}
	defer cl.Close()
	var stats feed.Stats
	done := make(chan error, 1)
	go func() { done <- feed.Produce(ctx, cl, cfg, &stats) }()
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			failed := ""
			if n := stats.Errors.Load(); n > 0 {
				failed = fmt.Sprintf("; %d records failed and are not counted", n)
			}
			fmt.Fprintf(stdout, "produced %d rows to %s (%d valid, %d malformed, %d duplicates) and %d labels to %s in %s%s\n",
				stats.Rows.Load(), *topic, stats.Valid.Load(), stats.Malformed.Load(), stats.Duplicates.Load(), stats.Labels.Load(),
				cmp.Or(*labelsTopic, "no topic"), time.Since(start).Round(time.Millisecond), failed)
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		case <-tick.C:
			n := stats.Rows.Load()
			fmt.Fprintf(stderr, "produce: %d rows, %.0f rows/s, %d labels\n", n, float64(n)/time.Since(start).Seconds(), stats.Labels.Load())
		}
	}
}
