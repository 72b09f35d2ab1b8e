package main

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/detectors/alert"
	"github.com/driftline/driftline/internal/app"
	"github.com/driftline/driftline/models/adminapi"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/pipeline/replay"
	"github.com/driftline/driftline/stages"
	"github.com/driftline/driftline/testkit/streams"
	"github.com/driftline/driftline/testkit/streams/feed"
)

// demoSummary is the one-line JSON the demo prints with --json.
type demoSummary struct {
	Produced   int64  `json:"produced"`
	Valid      int64  `json:"valid"`
	Malformed  int64  `json:"malformed"`
	Duplicates int64  `json:"duplicates"`
	Predicted  int64  `json:"predicted"`
	DLQ        int64  `json:"dlq"`
	Deduped    int64  `json:"deduplicated"`
	Lost       *int64 `json:"lost,omitempty"`
	// EventsPerS is the events taken in over ElapsedS, from the producer's
	// start until every event and label is accounted for (to within
	// app.DemoCheckEvery); DataPlaneS is until every event was taken.
	EventsPerS float64 `json:"events_per_s"`
	ElapsedS   float64 `json:"elapsed_s"`
	DataPlaneS float64 `json:"data_plane_s"`
	Labels     int64   `json:"labels"`
	Accuracy   float64 `json:"prequential_accuracy"`
	Baseline   float64 `json:"majority_baseline"`
	// LogLoss is a binary model's prequential log loss over every joined
	// label, and BaseRateLogLoss that of always predicting the labels'
	// positive share (-1 for other models).
	LogLoss         float64 `json:"prequential_logloss"`
	BaseRateLogLoss float64 `json:"base_rate_logloss"`
	PIILeaks        int64   `json:"pii_leaks"`
	// Prequential holds each served version's windowed accuracy, log loss and AUC.
	Prequential     []stages.PrequentialSummary `json:"prequential"`
	Alerts          []demoAlert                 `json:"alerts"`
	DriftAlerts     int                         `json:"drift_alerts"`
	AlertsDelivered int64                       `json:"alerts_delivered"`
	DriftAt         int64                       `json:"drift_at"`
	KafkaAddr       string                      `json:"kafka"`
	RedisAddr       string                      `json:"redis"`
	Partitions      int                         `json:"partitions"`
	StreamSeed      uint64                      `json:"seed"`
	Concept         string                      `json:"concept"`
	// Champion is the registry version serving at the end; Versions are the
	// model's registry versions with their lineage; RolloutEvents is the
	// audit log of the governance loop (registrations, alias and traffic
	// moves, gate decisions but holds), oldest first.
	Champion      int64                `json:"champion"`
	Versions      []app.VersionSummary `json:"versions"`
	RolloutEvents []app.RolloutEvent   `json:"rollout_events"`
	// Incomplete is set when the demo was interrupted; Unprocessed counts
	// the rows still waiting in the input topic then (not lost: they stay
	// in Kafka, and a restarted consumer would process them), so that
	// produced = predicted + dlq + deduplicated + unprocessed. An
	// interrupted demo does not read the outputs back: Lost is absent.
	Incomplete  bool  `json:"incomplete,omitempty"`
	Unprocessed int64 `json:"unprocessed"`
	// LabelsParked counts the labels parked at the end (none in a complete run).
	LabelsParked int64 `json:"labels_parked"`
}

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", "[flags]", `Run the whole pipeline in one process on embedded defaults: kfake (an
in-process Kafka on a loopback port that kcat can reach), miniredis, a
producer writing a seeded stream with concept drift, malformed rows,
duplicates and PII, delayed labels, the data plane, the label join and the
governance loop (the drift alert retrains a candidate, which goes shadow →
canary → champion through the rollout gate; ROLLOUT lines show each step).
Live progress goes to stderr. With --events N the demo stops once every
event is accounted for, reads the output topics back to count lost events,
and with --json prints a one-line summary on stdout, with the model's
versions and rollout events.

--model and --param choose another learner family for the whole loop (the
retrained candidates are of the same family), e.g. --model hat or --model
arf --param n_models=5; driftline eval --help lists the kinds and params.`, stderr)
	events := fs.Int64("events", 0, "events to produce, then stop (0: run until Ctrl-C)")
	jsonOut := fs.Bool("json", false, "print a one-line JSON summary on stdout at the end")
	rate := fs.Float64("rate", 20000, "events per second (0: as fast as the pipeline takes them)")
	partitions := fs.Int("partitions", 2, "partitions of each topic")
	kafkaPort := fs.Int("kafka-port", 0, "loopback port for the embedded Kafka (0: any free port)")
	malformed := fs.Float64("malformed", 0.01, "share of malformed rows")
	duplicates := fs.Float64("duplicates", 0.01, "share of duplicate rows")
	labelDelay := fs.Duration("label-delay", 200*time.Millisecond, "delay between an event and its label (plus up to as much again at random)")
	adminAddr := fs.String("admin", "127.0.0.1:0", "admin HTTP address: the status page, /metrics, /healthz, /readyz and /api/v1, with $"+adminapi.EnvAdminToken+" as the bootstrap admin token (a random one, printed, when unset)")
	shift := fs.String("shift", "", "a covariate shift of one feature, FEATURE=DELTA@EVENT: e.g. f2=3@150000 moves f2 by 3 from event 150,000 on (a feature drift, not a concept drift)")
	verbose := fs.Bool("v", false, "log pipeline internals")
	kind := fs.String("model", "", "learner family (model.kind) instead of the demo spec's logistic regression")
	specPath := fs.String("spec", "", "run an example spec of deploy/examples with its seeded scenario instead of the embedded demo")
	params := paramFlag{}
	fs.Var(params, "param", "a param of --model as name=value (repeatable)")
	var sf streamFlags
	sf.register(fs, 0)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	sh, err := streams.ParseShift(*shift)
	if err != nil {
		return fmt.Errorf("--shift: %w", err)
	}
	sf.shift = sh
	// Progress lines and alerts are written from different goroutines.
	terminal := replay.IsTerminal(stderr)
	stderr = &lockedWriter{w: stderr}
	if sf.concept == streams.ConceptSEA && sf.variant == 0 && sf.driftTo < 0 {
		// SEA 8 → 9.5 flips 13% of the labels: a drift the demo shows
		// clearly (the default 8 → 7 flips 7.5%).
		sf.driftTo = 3
	}
	if *events < 0 || *partitions < 1 {
		return errors.New("--events must be ≥ 0 and --partitions ≥ 1")
	}
	if sf.driftAt == 0 {
		sf.driftAt = 60000
		if *events > 0 {
			sf.driftAt = *events / 2
		}
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := newLogger(stderr, level)

	spec, err := app.DemoSpecOf(*specPath)
	var scenario streams.Scenario
	if err == nil && *specPath != "" {
		scenario, err = streams.NewScenario(spec.Name, sf.seed, sf.driftAt)
	}
	if err != nil {
		return err
	}
	if *kind != "" || len(params) > 0 {
		if *kind != "" && *kind != spec.Model.Kind {
			// The demo spec's optimizer settings are the logistic model's.
			spec.Model.Kind, spec.Model.Optimizer, spec.Model.LearnRate, spec.Model.L1, spec.Model.L2 = *kind, "", 0, 0, 0
		}
		spec.Model.Params = params
		if err := app.CheckSpec(spec); err != nil {
			return fmt.Errorf("--model/--param: %w", err)
		}
	}
	if _, err := app.EphemeralKeys(&spec.Stages.Anonymize); err != nil {
		return err
	}
	emb, err := app.StartEmbedded(spec, app.DemoEmbedded(*kafkaPort, *partitions, *events == 0))
	if err != nil {
		return err
	}
	defer emb.Close()
	brokers := emb.Brokers
	fmt.Fprintf(stderr, "demo: kafka on %s (try: kcat -b %s -C -t %s), redis on %s\n", brokers[0], brokers[0], spec.Topics.Predictions, emb.RedisAddr)

	onAlert := func(a alert.Alert) {
		fmt.Fprintf(stderr, "\nALERT %s: %s on %q (statistic %.4g, window %d, model %s)\n", a.State, a.Detector, a.Subject, a.Statistic, a.Window, a.ModelVersion)
	}
	token, err := app.DemoAdminToken()
	if err != nil {
		return err
	}
	pl, err := app.Open(ctx, spec, app.Options{Log: log, OnAlert: onAlert, AdminToken: token})
	if err != nil {
		return err
	}
	closeApp := true // not while the planes still run (waitPlanes)
	defer func() {
		if closeApp {
			pl.Close()
		}
	}()
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	kcc, err := app.KafkaClient(spec, "driftline-demo")
	if err != nil {
		return err
	}
	delivered, err := startAlertWatcher(runCtx, spec, kcc, log)
	if err != nil {
		return err
	}
	addr, err := pl.ServeAdmin(runCtx, *adminAddr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "demo: status page http://%s/#token=%s\ndemo: metrics on http://%s/metrics; the CLI: export %s=http://%s %s=%s\n",
		addr, token, addr, envAdminURL, addr, adminapi.EnvAdminToken, token)
	planeErr := make(chan error, 1)
	go func() { planeErr <- pl.Run(runCtx) }()

	// Producer.
	pcl, err := kafka.NewProducer(kafka.ProducerConfig{Client: kcc, Linger: 2 * time.Millisecond})
	if err != nil {
		return err
	}
	defer pcl.Close()
	var stats feed.Stats
	pcfg := feed.Config{
		Topic: spec.Topics.Input, LabelsTopic: spec.Topics.Labels, Stream: sf.config(), Scenario: scenario, Events: *events, Rate: *rate,
		MalformedRate: *malformed, DuplicateRate: *duplicates, LabelDelay: *labelDelay, LabelJitter: *labelDelay,
		Taken: pl.Taken, MaxBacklog: app.DemoMaxBacklog(spec), // backpressure: a bounded backlog at any rate
	}
	if err := pcfg.Validate(); err != nil {
		return err
	}
	prodDone := make(chan error, 1)
	start := time.Now()
	go func() { prodDone <- feed.Produce(ctx, pcl, pcfg, &stats) }()

	tail := &rolloutTail{reg: pl.Registry(), model: spec.Model.Name, w: stderr}
	progress := newProgress(stderr, terminal)
	tick := time.NewTicker(app.DemoCheckEvery)
	defer tick.Stop()
	producing := true
	incomplete := false
	var stuckSince time.Time // every event and label processed, some labels still parked
	var dataPlane time.Duration
loop:
	for {
		select {
		case err := <-prodDone:
			producing = false
			// Records in flight when the run is stopped (Ctrl-C, or the
			// caller's deadline) fail with the run's own context error.
			if err != nil && !errors.Is(err, ctx.Err()) {
				return fmt.Errorf("producer: %w", err)
			}
		case err := <-planeErr:
			return fmt.Errorf("pipeline stopped: %w", err)
		case <-ctx.Done():
			incomplete = *events == 0
			break loop
		case <-tick.C:
			emb.Housekeep()
			if progress.show(pl, &stats, start, false) {
				tail.print(ctx, progress)
			}
		}
		t := pl.Totals()
		ls, _ := pl.Labels()
		if dataPlane == 0 && !producing && t.Out+t.DLQ+t.Duplicates >= stats.Rows.Load() {
			dataPlane = time.Since(start) // every event taken: the rest is the labels' delay and join
		}
		if !producing && *events > 0 && t.Out+t.DLQ+t.Duplicates >= stats.Rows.Load() && ls.Processed >= stats.Labels.Load() {
			// Every event is predicted: a parked label has no prediction to wait for.
			if stuckSince = cmp.Or(stuckSince, time.Now()); ls.Counts.Settled() >= stats.Labels.Load() || time.Since(stuckSince) > app.DemoParkedGrace {
				break
			}
		}
	}
	elapsed := time.Since(start)
	// Every event and label is in: give a rollout still in progress its
	// decision on the last outcomes (not counted in the run's time).
	for wait := time.Now().Add(app.DemoRolloutGrace); !incomplete && time.Now().Before(wait); <-tick.C {
		if busy, err := app.RolloutInProgress(ctx, pl.Registry(), spec.Model.Name); err != nil || !busy {
			break
		}
		tail.print(ctx, progress)
	}
	progress.show(pl, &stats, start, true)
	tail.print(ctx, progress)
	progress.done()
	stopRun()
	if err := app.WaitPlanes(planeErr, incomplete); errors.Is(err, app.ErrStillDraining) {
		closeApp = false
		fmt.Fprintf(stderr, "demo: interrupted; not waiting more than %s for the in-flight batches\n", app.InterruptStopBudget)
	} else if err != nil {
		return err
	}
	t := pl.Totals()
	ls, labelled := pl.Labels()
	sum := demoSummary{
		Produced: stats.Rows.Load(), Valid: stats.Valid.Load(), Malformed: stats.Malformed.Load(), Duplicates: stats.Duplicates.Load(),
		Predicted: t.Out, DLQ: t.DLQ, Deduped: t.Duplicates, Labels: stats.Labels.Load(),
		ElapsedS: elapsed.Seconds(), EventsPerS: float64(t.In) / elapsed.Seconds(), DataPlaneS: dataPlane.Seconds(),
		KafkaAddr: brokers[0], RedisAddr: emb.RedisAddr, Partitions: *partitions, StreamSeed: sf.seed, Concept: sf.concept,
		Incomplete: incomplete, Accuracy: math.NaN(), Baseline: math.NaN(), LogLoss: math.NaN(), BaseRateLogLoss: math.NaN(),
	}
	if labelled {
		sum.Accuracy, sum.Baseline, sum.Prequential = ls.Accuracy, ls.Baseline, ls.Versions
		sum.LogLoss, sum.BaseRateLogLoss = ls.LogLoss, ls.BaseRateLogLoss
		sum.LabelsParked = ls.Counts.Parked()
	}
	if incomplete {
		// Interrupted: stop at once. Events the pipeline never took in are
		// waiting in the input topic, not lost; the outputs are not read back.
		sum.Unprocessed = sum.Produced - (t.Out + t.DLQ + t.Duplicates)
	} else {
		check, err := feed.ReadBack(context.WithoutCancel(ctx), kcc, spec, &stats)
		if err != nil {
			return fmt.Errorf("read back topics: %w", err)
		}
		sum.Lost, sum.PIILeaks = &check.Lost, check.PIILeaks
	}
	sum.DriftAt = sf.driftAt
	sum.Alerts = []demoAlert{}
	for _, a := range pl.RaisedAlertsAt() {
		if a.State == alert.StateDrift {
			sum.DriftAlerts++
		}
		sum.Alerts = append(sum.Alerts, demoAlert{Detector: a.Detector, Subject: a.Subject, State: string(a.State), Severity: string(a.Severity), Statistic: a.Statistic, Window: a.Window, Rows: a.Rows})
	}
	if sum.Champion, sum.Versions, sum.RolloutEvents, err = app.GovernanceSummary(context.WithoutCancel(ctx), pl.Registry(), spec.Model.Name); err != nil {
		return fmt.Errorf("read the registry: %w", err)
	}
	// Give the SRE-side router a moment to receive the last alerts (not
	// when interrupted).
	for wait := time.Now().Add(3 * time.Second); !incomplete && delivered.Load() < int64(len(sum.Alerts)) && time.Now().Before(wait); {
		time.Sleep(50 * time.Millisecond)
	}
	sum.AlertsDelivered = delivered.Load()
	lost := "not read back (interrupted)"
	if sum.Lost != nil {
		lost = fmt.Sprintf("%d lost, %d PII leaks", *sum.Lost, sum.PIILeaks)
	}
	fmt.Fprintf(stderr, "demo: %d produced = %d predicted + %d to the DLQ + %d duplicates dropped + %d unprocessed; %s; prequential accuracy %.3f (majority baseline %.3f), %d drift alert(s) for the drift at event %d, %d model versions, champion %d\n",
		sum.Produced, sum.Predicted, sum.DLQ, sum.Deduped, sum.Unprocessed, lost, sum.Accuracy, sum.Baseline, sum.DriftAlerts, sum.DriftAt, len(sum.Versions), sum.Champion)
	if *jsonOut {
		b, err := json.Marshal(jsonSafe(sum))
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, string(b))
	}
	if sum.Lost != nil && *sum.Lost > 0 {
		return fmt.Errorf("%d events lost", *sum.Lost)
	}
	if !incomplete && sum.LabelsParked > 0 {
		return fmt.Errorf("%d labels still parked with every event predicted: their predictions are gone", sum.LabelsParked)
	}
	return nil
}

// demoAlert is an alert as the demo summary lists it.
type demoAlert struct {
	Detector  string  `json:"detector"`
	Subject   string  `json:"subject"`
	State     string  `json:"state"`
	Severity  string  `json:"severity"`
	Statistic float64 `json:"statistic"`
	Window    uint64  `json:"window"`
	// Rows are the rows the drift monitor had observed when it raised it.
	Rows uint64 `json:"rows"`
}

// jsonSafe replaces NaN metrics (no labels yet) with -1, which JSON can carry.
func jsonSafe(s demoSummary) demoSummary {
	s.Prequential = slices.Clone(s.Prequential)
	fs := []*float64{&s.Accuracy, &s.Baseline, &s.LogLoss, &s.BaseRateLogLoss}
	for i := range s.Prequential {
		fs = append(fs, &s.Prequential[i].Accuracy, &s.Prequential[i].LogLoss, &s.Prequential[i].AUC)
	}
	for _, f := range fs {
		if math.IsNaN(*f) {
			*f = -1
		}
	}
	return s
}

// startAlertWatcher runs the SRE side of the control plane: a watermill
// router in its own consumer group that consumes the alerts topic. It
// returns the count of alerts received.
func startAlertWatcher(ctx context.Context, spec *pipeline.Spec, cc kafka.ClientConfig, log *slog.Logger) (*atomic.Int64, error) {
	var delivered atomic.Int64
	err := app.StartAlertRouter(ctx, spec, cc, spec.Kafka.Group+"-sre", func(_ context.Context, a alert.Alert) error {
		delivered.Add(1)
		log.Info("alert received", "detector", a.Detector, "subject", a.Subject, "state", a.State)
		return nil
	}, log)
	return &delivered, err
}

// progress prints one status line a second: in place on a terminal, as
// plain lines otherwise.
type progress struct {
	w        io.Writer
	terminal bool
	lastIn   int64
	lastAt   time.Time
}

func newProgress(w io.Writer, terminal bool) *progress {
	return &progress{w: w, lastAt: time.Now(), terminal: terminal}
}

// lockedWriter serializes writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// show prints the line, once a second unless forced, and says whether it did.
func (p *progress) show(pl *app.App, stats *feed.Stats, start time.Time, force bool) bool {
	now := time.Now()
	if !force && now.Sub(p.lastAt) < time.Second {
		return false
	}
	t := pl.Totals()
	ls, _ := pl.Labels()
	rate := float64(t.In-p.lastIn) / now.Sub(p.lastAt).Seconds()
	p.lastIn, p.lastAt = t.In, now
	lag := stats.Rows.Load() - (t.Out + t.DLQ + t.Duplicates)
	line := fmt.Sprintf("%5.0fs  produced %d  predicted %d  dlq %d  dup %d  lag %d  %.0f ev/s  labels %d  accuracy %s",
		now.Sub(start).Seconds(), stats.Rows.Load(), t.Out, t.DLQ, t.Duplicates, max(lag, 0), rate, ls.Joined, formatRatio(ls.WindowAccuracy))
	if p.terminal {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
	return true
}

func (p *progress) done() {
	if p.terminal {
		fmt.Fprintln(p.w)
	}
}

func formatRatio(x float64) string {
	if math.IsNaN(x) {
		return "-"
	}
	return strconv.FormatFloat(x, 'f', 3, 64)
}
