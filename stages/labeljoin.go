package stages

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/pipeline"
)

// PredictionCache keeps, per event id, the features a prediction was made
// from and its score, until the label arrives or the entry ages out. It
// lives in Redis: one key per event with a TTL of twice the label TTL (a
// label within the TTL is on time, within twice the TTL late). Pending
// predictions are indexed per batch, not per event: each Put's batch is a
// set of its pending event ids, and a sorted set indexes the batches by
// expiry; a count of pending predictions bounds the cache to MaxPending
// (the oldest batch's are evicted first). Expired and evicted predictions
// count as missing labels. See labelplane_scripts.go.
//
// A label can overtake its prediction when the data plane lags. Such an
// early label is parked under its own key (with the same TTL; indexed per
// batch of labels, as the predictions are, and counted for max_parked);
// Put picks it up in the same script call that caches the prediction
// and joins it at once (holding it until the row's offset is committed,
// for the row delivered again after a restart). Put looks for early labels
// only while any label is parked or held. Early labels that expire unjoined count as orphans. Each Put and
// each batch of labels is one script call. It is safe for concurrent use.
type PredictionCache struct {
	rdb     redis.UniversalClient
	prefix  string
	early   string
	batches string
	batch   string
	pending string
	// earlyBatches, earlyBatch and parked index the parked labels per
	// label batch; oldEarlyIndex is the previous version's index, read
	// while it holds labels (see labelplane_scripts.go, "Upgrade").
	earlyBatches  string
	earlyBatch    string
	parked        string
	oldEarlyIndex string
	taken         string
	putTaken      string
	// held names the hashes that hold the early labels puts joined until
	// their rows are committed (heldOf, putBatch).
	held string
	// labelsCommitted and inputCommitted, when set, keep the taken marks
	// and the put marks until their records are committed
	// (LabelJoin.KeepMarksUntilCommitted).
	labelsCommitted, inputCommitted *CommittedOffsets
	// jobs pools the put jobs (putJob); done is the put marks of each
	// partition's puts that are not deleted yet (putDone).
	jobs sync.Pool
	done putDone
	// refBase and refSeq name this process's batches (batchRef).
	refBase    string
	refSeq     atomic.Uint64
	ttl        time.Duration
	maxPending int
	maxParked  int
	version    string
	idCol      int
	metrics    *JoinMetrics
	now        func() time.Time
	// keep, mark and ready are set in learner-state log mode
	// (NewLoggedPredictionCache, labeljoin_log.go).
	keep        bool
	mark, ready string
}

// NewPredictionCache builds the cache for a spec's labels settings.
func NewPredictionCache(spec *pipeline.Spec, rdb redis.UniversalClient, version string, m *JoinMetrics) *PredictionCache {
	return &PredictionCache{
		rdb:           rdb,
		prefix:        spec.Redis.Prefix() + "pred:",
		early:         spec.Redis.Prefix() + "early-label:",
		batches:       spec.Redis.Prefix() + "pred-batches",
		batch:         spec.Redis.Prefix() + "pred-batch:",
		pending:       spec.Redis.Prefix() + "pred-pending",
		earlyBatches:  spec.Redis.Prefix() + "early-batches",
		earlyBatch:    spec.Redis.Prefix() + "early-batch:",
		parked:        spec.Redis.Prefix() + "early-parked",
		oldEarlyIndex: spec.Redis.Prefix() + "early-label-index",
		taken:         spec.Redis.Prefix() + "label-taken:",
		putTaken:      spec.Redis.Prefix() + "put-taken:",
		held:          spec.Redis.Prefix() + "early-held:",
		refBase:       newBatchRefBase(),
		ttl:           spec.Labels.TTL.D(),
		maxPending:    spec.Labels.MaxPending,
		maxParked:     max(spec.Labels.MaxParked, 1),
		version:       version,
		idCol:         spec.FieldIndex(spec.Schema.IDField),
		metrics:       m,
		now:           time.Now,
	}
}

// Put caches every scored row of the batch, and returns, for rows whose
// label came early, the label (the row's index in b.Features) — see
// LabelJoin.Observe, which joins them.
func (c *PredictionCache) Put(ctx context.Context, b *pipeline.Batch) ([]earlyLabel, error) {
	return c.PutVersions(ctx, b, nil)
}

// PutVersions is Put with the version that predicted each row (parallel to
// b.Scores, see Score.Versions); nil means the cache's version for all.
func (c *PredictionCache) PutVersions(ctx context.Context, b *pipeline.Batch, versions []string) ([]earlyLabel, error) {
	return c.PutServed(ctx, b, Served{Versions: versions})
}

// labelPlaneChunk is the most events one label-plane script call takes
// (putBatch, joinBatch): a script holds Redis for its whole run.
const labelPlaneChunk = 512

// joinLabels joins labels to their cached predictions in one joinBatch
// call (pos: each label's position), and returns one result per label:
// the cached entry (a string), nil when the label was parked, or an
// int64 when it was refused (joinRefusedParkedFull, joinRefusedDuplicate).
// taken names the call's taken marks (takenMarks): taken[0] those of the
// labels before split, taken[1] of the others; done those done with,
// which the call deletes. The call is idempotent (see joinBatch).
func (c *PredictionCache) joinLabels(ctx context.Context, ids []string, labels []float32, pos []string, taken [2]string, split int, done []string) ([]any, error) {
	per := 2
	if c.keep {
		per = 3
	}
	keys := make([]string, 0, 7+len(done)+per*len(ids))
	keys = append(keys, c.batches, c.earlyBatches, c.pending, c.parked, c.oldEarlyIndex,
		cmp.Or(taken[0], c.batches), cmp.Or(taken[1], taken[0], c.batches)) // log mode: unused
	keys = append(keys, done...)
	args := make([]any, 0, 10+2*len(ids))
	args = append(args, (2 * c.ttl).Milliseconds(), c.maxParked, c.prefix, c.batch, c.earlyBatch, c.keepFlag(), len(done), split+1, c.batchRef(), takenSpan)
	for i, id := range ids {
		keys = append(keys, c.prefix+id, c.early+id)
		if c.keep {
			keys = append(keys, c.mark+id)
		}
		args = append(args, string(binary.LittleEndian.AppendUint32(nil, math.Float32bits(labels[i]))), pos[i])
	}
	res, err := joinBatch.Run(ctx, c.rdb, keys, args...).Slice()
	if err != nil {
		return nil, err
	}
	if len(res) != len(ids)+1 {
		return nil, fmt.Errorf("a reply of %d elements for %d labels", len(res), len(ids))
	}
	parked, _ := res[len(ids)].(int64)
	c.metrics.parked.Set(float64(parked))
	return res[:len(ids)], nil
}

// takenMarks names the taken marks of a label at offset of a labels
// partition: outside log mode, the predictions the labels of its
// generation took (takenMarksOf), kept until the partition's next batch
// in another generation or, with LabelJoin.KeepMarksUntilCommitted, until
// the generation's offsets are committed, so that a batch can be run
// again (see joinBatch). In log mode the rows' own marks do that: "".
func (c *PredictionCache) takenMarks(partition int32, offset int64) string {
	if c.keep {
		return ""
	}
	return c.takenMarksOf(partition, takenGen(offset))
}

// keepFlag is putBatch's and joinBatch's log-mode argument.
func (c *PredictionCache) keepFlag() string {
	if c.keep {
		return "1"
	}
	return "0"
}

// newBatchRefBase is a random prefix for this process's batch references.
func newBatchRefBase() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// batchRef names a new batch of predictions: unique per process (a
// counter) and across processes (a random prefix).
func (c *PredictionCache) batchRef() string {
	return c.refBase + strconv.FormatUint(c.refSeq.Add(1), 36)
}

type earlyLabel struct {
	row   int
	label float32
}

// cachedPrediction is one decoded cache entry.
type cachedPrediction struct {
	at      time.Time
	score   float32
	version string
	step    servedStep
	dense   []float32
	hashed  []int32
}

// servedStep is the rollout step a prediction was served under: its arm
// and, for the canary, the canary's share of keys then. The zero value is
// unknown (an entry cached before steps were kept).
type servedStep struct {
	arm     string
	percent int
}

// step is row j's rollout step.
func (s *Served) step(j int) servedStep {
	if s.Arms == nil {
		return servedStep{arm: ArmChampion}
	}
	st := servedStep{arm: s.Arms[j]}
	if st.arm == ArmCanary {
		st.percent = s.CanaryPercent
	}
	return st
}

// Arm codes of a cache entry's step.
var stepArmCodes = [...]string{1: ArmChampion, 2: ArmCanary}

func stepArmCode(arm string) byte {
	for c, a := range stepArmCodes {
		if a == arm && a != "" {
			return byte(c)
		}
	}
	return 0
}

// Entry layout, little-endian: unix ms (8) | score (4) | version length (1)
// | version | NumDense (2) | NumHashed (2) | dense float32s | hashed int32s
// | step arm code (1) | step canary percent (1) | batch reference |
// its length (1) | entryBatchRef. Entries cached before the step was kept
// end after the hashed int32s; they decode with an unknown step. Entries
// cached before the batch was kept end after the step.
func encodeEntry(at time.Time, score float32, version string, step servedStep, dense []float32, hashed []int32, batch string) []byte {
	buf := make([]byte, 0, 21+len(version)+4*(len(dense)+len(hashed))+len(batch))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(at.UnixMilli()))
	buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(score))
	buf = append(buf, byte(len(version)))
	buf = append(buf, version...)
	buf = binary.LittleEndian.AppendUint16(buf, uint16(len(dense)))
	buf = binary.LittleEndian.AppendUint16(buf, uint16(len(hashed)))
	for _, v := range dense {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
	}
	for _, v := range hashed {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(v))
	}
	buf = append(buf, stepArmCode(step.arm), byte(min(max(step.percent, 0), 100)))
	buf = append(buf, batch...)
	return append(buf, byte(len(batch)), entryBatchRef)
}

// entryBatchRef ends an entry that names its batch (183: above any
// canary percent, the last byte of an entry without it). luaUnpend reads it.
const entryBatchRef = 183

var errBadEntry = errors.New("corrupt prediction cache entry")

func decodeEntry(buf []byte, p *cachedPrediction) error {
	if len(buf) < 13 {
		return errBadEntry
	}
	p.at = time.UnixMilli(int64(binary.LittleEndian.Uint64(buf)))
	p.score = math.Float32frombits(binary.LittleEndian.Uint32(buf[8:]))
	vl := int(buf[12])
	buf = buf[13:]
	if len(buf) < vl+4 {
		return errBadEntry
	}
	p.version = string(buf[:vl])
	buf = buf[vl:]
	nd, nh := int(binary.LittleEndian.Uint16(buf)), int(binary.LittleEndian.Uint16(buf[2:]))
	buf = buf[4:]
	p.step = servedStep{}
	if rest := len(buf) - 4*(nd+nh); rest >= 4 && buf[len(buf)-1] == entryBatchRef && int(buf[len(buf)-2]) == rest-4 {
		buf = buf[:len(buf)-rest+2] // the batch reference is Redis's business
	}
	switch len(buf) {
	case 4 * (nd + nh):
	case 4*(nd+nh) + 2:
		if code := int(buf[len(buf)-2]); code < len(stepArmCodes) {
			p.step = servedStep{arm: stepArmCodes[code], percent: int(buf[len(buf)-1])}
		}
		buf = buf[:len(buf)-2]
	default:
		return errBadEntry
	}
	p.dense = p.dense[:0]
	for i := 0; i < nd; i++ {
		p.dense = append(p.dense, math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:])))
	}
	buf = buf[4*nd:]
	p.hashed = p.hashed[:0]
	for i := 0; i < nh; i++ {
		p.hashed = append(p.hashed, int32(binary.LittleEndian.Uint32(buf[4*i:])))
	}
	return nil
}

// JoinMetrics count label-join outcomes and hold prequential metrics per
// model version.
type JoinMetrics struct {
	joined, late, early, orphan, missing, evicted, invalid prometheus.Counter
	shadowSkipped, parkedOverflow                          prometheus.Counter
	parked                                                 prometheus.Gauge
	accuracy, logLoss, auc, mae, rmse                      *prometheus.GaugeVec
	// earlyJoined counts the parked labels taken when their prediction
	// came: joined (they count in joined too) or, in log mode, invalid.
	earlyJoined atomic.Int64

	mu    sync.Mutex
	preq  map[string]*models.Prequential
	names map[string]string // version → model name
	// serving is the versions that serve now (SetServing); nil: all.
	serving map[string]bool
}

func (m *JoinMetrics) gauges() []*prometheus.GaugeVec {
	return []*prometheus.GaugeVec{m.accuracy, m.logLoss, m.auc, m.mae, m.rmse}
}

// NewJoinMetrics registers the label-join metrics on reg.
func NewJoinMetrics(reg prometheus.Registerer) (*JoinMetrics, error) {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"model", "version"})
	}
	m := &JoinMetrics{
		joined:   counter("driftline_labels_joined_total", "Labels joined to their prediction within the label TTL."),
		late:     counter("driftline_labels_late_total", "Labels joined after the label TTL (and within twice it)."),
		early:    counter("driftline_labels_early_total", "Labels that arrived before their prediction was cached and were parked."),
		orphan:   counter("driftline_labels_orphan_total", "Parked labels whose prediction never came before expiry."),
		missing:  counter("driftline_labels_missing_total", "Predictions whose label never came before expiry or eviction."),
		evicted:  counter("driftline_labels_cache_evicted_total", "Cached predictions evicted to keep the cache under labels.max_pending."),
		invalid:  counter("driftline_labels_invalid_total", "Label records refused and sent to the DLQ: unparsable, an id over labels.max_id_bytes, a label the model can't learn, or a duplicate of a label parked or joined in the same batch."),
		accuracy: gauge("driftline_model_prequential_accuracy_ratio", "Windowed prequential accuracy."),
		logLoss:  gauge("driftline_model_prequential_logloss", "Windowed prequential log loss."),
		auc:      gauge("driftline_model_prequential_auc_ratio", "Windowed prequential ROC AUC."),
		mae:      gauge("driftline_model_prequential_mae", "Windowed prequential mean absolute error."),
		rmse:     gauge("driftline_model_prequential_rmse", "Windowed prequential root mean squared error."),
		preq:     map[string]*models.Prequential{},
		names:    map[string]string{},
	}
	m.shadowSkipped = counter("driftline_labels_shadow_skipped_total",
		"Joined labels the shadow arm skipped: it could not score or learn their rows (e.g. another feature layout).")
	m.parkedOverflow = counter("driftline_labels_parked_overflow_total",
		"Labels that arrived before their prediction while labels.max_parked labels were parked, sent to the DLQ instead.")
	m.parked = prometheus.NewGauge(prometheus.GaugeOpts{Name: "driftline_labels_parked",
		Help: "Labels parked until their prediction is cached, as the label plane last saw (bounded by labels.max_parked)."})
	for _, c := range []prometheus.Collector{m.joined, m.late, m.early, m.orphan, m.missing, m.evicted, m.invalid, m.shadowSkipped,
		m.parkedOverflow, m.parked, m.accuracy, m.logLoss, m.auc, m.mae, m.rmse} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register label-join metrics: %w", err)
		}
	}
	return m, nil
}

// LabelCounts is a snapshot of the label join's counters. Every label
// record processed is counted once, in one of Joined, Late, Orphan,
// Invalid and ParkedOverflow, or is still parked:
//
//	Processed = Joined + Late + Orphan + Invalid + ParkedOverflow + Parked()
//
// Early counts the labels ever parked, of which EarlyJoined were taken when
// their prediction came (joined, and so in Joined too, or in log mode
// invalid) and Orphan expired first; Missing counts predictions, not
// labels. A second label for an event whose label is parked, or that a
// label of the same batch joined, is refused as a duplicate (Invalid). A
// label batch run twice (its reply lost, its handling retried) is
// counted, and learned from, once: the join's scripts are idempotent (see
// joinBatch), also when a put took a label the first run parked (the
// second run counts it parked, as the first would have, and the put
// counted it in EarlyJoined and Joined). Outside log mode, a label record
// delivered again to the process that counted it (its consumer group lost
// the partition and gave it back before the offset was committed) is
// counted once too: the counters and Processed skip it (see
// LabelJoin.countedBelow), though it is taught again if joined again.
type LabelCounts struct {
	Processed, Joined, Late, Early, EarlyJoined, Orphan, Invalid, ParkedOverflow, Missing int64
}

// Parked is the labels this process parked that still wait for their
// prediction, as far as its own counters tell: Early - EarlyJoined -
// Orphan, never below 0. The counters are per process but the park is in
// Redis: after a restart, the labels an earlier process parked are joined
// (EarlyJoined) or expire (Orphan) in this one, which never counted them
// in Early. Those inherited labels make the difference an undercount, and
// negative when they outnumber the labels this process parked and still
// waits on; a count of labels cannot be, so it is clamped at 0. The
// identity Processed = Settled() + Parked() then holds only in a process
// that inherited no parked label (its Settled counts the inherited ones
// too). A label delivered again after a restart (to another process: the
// same process does not count it again) whose parked label a put
// took already (in any process) is counted in Early by the process it is
// delivered to again, which never sees it joined: there it makes the
// difference an overcount, by one per such label. The park's size across
// processes is the driftline_labels_parked gauge.
func (c LabelCounts) Parked() int64 { return max(0, c.Early-c.EarlyJoined-c.Orphan) }

// Settled is the labels counted in a terminal counter: all but the parked.
func (c LabelCounts) Settled() int64 {
	return c.Joined + c.Late + c.Orphan + c.Invalid + c.ParkedOverflow
}

// Counts returns the label counters now. It is safe for concurrent use;
// the counters are read one by one, so a snapshot taken while labels are
// handled may be off by the labels handled meanwhile.
func (j *LabelJoin) Counts() LabelCounts {
	m := j.metrics
	value := func(c prometheus.Counter) int64 {
		var d dto.Metric
		if err := c.Write(&d); err != nil {
			return 0
		}
		return int64(d.GetCounter().GetValue())
	}
	return LabelCounts{
		Processed: j.processed.Load(), Joined: value(m.joined), Late: value(m.late), Early: value(m.early),
		EarlyJoined: m.earlyJoined.Load(), Orphan: value(m.orphan), Invalid: value(m.invalid),
		ParkedOverflow: value(m.parkedOverflow), Missing: value(m.missing),
	}
}

// PrequentialSummary is a snapshot of one model version's metrics.
type PrequentialSummary struct {
	Model    string  `json:"model"`
	Version  string  `json:"version"`
	Labels   int64   `json:"labels"`
	Accuracy float64 `json:"accuracy"`
	LogLoss  float64 `json:"logloss"`
	AUC      float64 `json:"auc"`
}

// Summaries returns every version's windowed metrics.
func (m *JoinMetrics) Summaries() []PrequentialSummary {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]PrequentialSummary, 0, len(m.preq))
	for v, p := range m.preq {
		out = append(out, PrequentialSummary{Model: m.names[v], Version: v, Labels: p.Count(), Accuracy: p.Accuracy(), LogLoss: p.LogLoss(), AUC: p.AUC()})
	}
	return out
}

func (m *JoinMetrics) observe(model, version string, score, y float64, decision models.Decision) {
	m.mu.Lock()
	if m.serving != nil && !m.serving[version] {
		m.mu.Unlock()
		return
	}
	p := m.preq[version]
	if p == nil {
		p = models.NewPrequentialFor(models.DefaultPrequentialWindow, decision)
		m.preq[version] = p
		m.names[version] = model
	}
	p.Update(score, y)
	m.mu.Unlock()
}

// publish copies the prequential metrics into the gauges.
func (m *JoinMetrics) publish() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for v, p := range m.preq {
		name := m.names[v]
		m.accuracy.WithLabelValues(name, v).Set(p.Accuracy())
		m.logLoss.WithLabelValues(name, v).Set(p.LogLoss())
		m.auc.WithLabelValues(name, v).Set(p.AUC())
		m.mae.WithLabelValues(name, v).Set(p.MAE())
		m.rmse.WithLabelValues(name, v).Set(p.RMSE())
	}
}

// Outcome is one joined label: what a model predicted, and the truth.
type Outcome struct {
	// ID is the labelled event's id ("" for the shadow's second pass).
	ID string
	// Version is the model version whose prediction Score is.
	Version string
	// Arm is the arm of that version: for the cached (served) prediction,
	// the arm that serves Version now, ArmChampion or ArmCanary (without
	// Arms, ArmChampion when Version is the join's model's), or "" for a
	// retired version that no arm serves any more; ArmShadow for the
	// shadow's prequential prediction of the same label (see
	// LabelJoin.Arms).
	Arm string
	// ServedArm and CanaryPercent say under which rollout step the
	// prediction was made: the arm that served it then (ArmChampion or
	// ArmCanary; ArmShadow for the shadow's prediction, made as the label
	// is joined) and, for a canary, the canary's share of keys then. A
	// rollout step's evidence is the outcomes of its own predictions.
	// ServedArm is "" for a prediction cached without its step (by an
	// older version).
	ServedArm     string
	CanaryPercent int
	Score         float32
	Label         float32
	At            time.Time
	// Paired and PairedScore: for the shadow's outcome of a label that the
	// champion served, Paired is set and PairedScore is the champion's
	// served score of it, so that the two can be compared label by label
	// (the rollout gate's paired test). Unset for every other outcome.
	Paired      bool
	PairedScore float32
	// Source is the record the outcome came from, by which a consumer
	// (the live lake's labels table) recognizes it when it comes again
	// after a restart: the label record's position on the labels topic,
	// or, for a label that came before its prediction and was joined when
	// its event was scored, the event's position on the input topic. Its
	// Topic is "" when there is none (the shadow's second pass, log
	// mode's early labels).
	Source SourcePosition
}

// SourcePosition is a record's position on its topic.
type SourcePosition struct {
	Topic     string
	Partition int32
	Offset    int64
}

// positionOf is m's position.
func positionOf(m *pipeline.Message) SourcePosition {
	return SourcePosition{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}
}

// LabelJoin consumes label records ({"<id field>": …, "<label field>": 0|1
// or a number}), joins each to its cached prediction by event id, and
// feeds the champion: it learns from the features exactly as they were when
// it predicted, after the prequential metrics score that earlier
// prediction. A cache entry is deleted when joined, so a label is learned
// at most once. Labels that overtake their prediction are parked and joined
// by Observe when the prediction is cached. Open returns one
// pipeline.PartitionHandler per labels-topic partition; the LabelJoin is
// safe for concurrent use by them and by the data plane's Observe calls.
type LabelJoin struct {
	cache     *PredictionCache
	model     *ServedModel
	metrics   *JoinMetrics
	spec      *pipeline.Spec
	decision  models.Decision
	processed atomic.Int64
	// OnOutcome, when set, sees every joined outcome (drift detectors):
	// one per joined label for the served prediction, and, with a shadow
	// set on Arms, one more for the shadow's (Arm ArmShadow). It is called
	// from the labels-topic partitions and the data plane's Observe calls
	// concurrently.
	OnOutcome func(o Outcome)
	// Arms, when set, replaces the model given to NewLabelJoin: labels
	// teach whichever arm served the prediction's version (the champion
	// batched, a canary row by row), and only score when no arm serves it
	// any more. When Arms has a shadow, the shadow learns prequentially
	// from every joined label whose prediction another version served
	// (champion, canary or retired): after the batch's rows are gathered it
	// predicts them, each prediction is an Outcome of the shadow's version
	// (in the per-version prequential metrics too), and then it learns
	// them. A batch the shadow cannot predict (another feature layout) is
	// skipped by the shadow alone and counted in
	// driftline_labels_shadow_skipped_total.
	Arms *Arms
	// OnLearned, when set, is called once per join batch that taught any
	// row (once per run of rows of one feature layout, should a batch mix
	// layouts), after learning, with every joined row that an arm learned: the
	// champion's rows first, then the canary's, each in join order (not the
	// shadow's second pass, nor rows of retired versions). y holds their
	// labels; a label the learner rejected (models.ErrInvalidLabel) may be
	// among them. rows and y are reused by the next batch: the callee must
	// copy what it keeps. Like OnOutcome it may be called concurrently.
	OnLearned func(rows *models.Rows, y []float32)

	bufs sync.Pool // *joinBuf for ObserveVersions
	// countedMu guards counted: per labels partition, the offset below
	// which this process has counted every label record it handled
	// (countedBelow).
	countedMu sync.Mutex
	counted   map[int32]int64
	// joined holds, in log mode, the events joined since TakeJoined.
	joinedMu sync.Mutex
	joined   []string
}

// NewLabelJoin builds the label join for the champion.
func NewLabelJoin(spec *pipeline.Spec, cache *PredictionCache, champion *ServedModel) *LabelJoin {
	return &LabelJoin{cache: cache, model: champion, metrics: cache.metrics, spec: spec, decision: DecisionOf(spec)}
}

// Processed is the number of label records handled so far (each once,
// however often its batch was tried or delivered): see LabelCounts.
func (j *LabelJoin) Processed() int64 { return j.processed.Load() }

// countedBelow is the offset of partition below which this process has
// counted the label records it handled: a record below it is one
// delivered to this process again (its group lost the partition, after a
// pause longer than its session, before the offset was committed, and got
// it back), already counted when it was first handled. The join's scripts
// reply to it as they did the first time (joined again from its mark, or
// parked: its own parked label, or one a put took since); counting it
// again would count a label twice, and a parked one in Early twice, which
// Parked() would report waiting for a prediction forever. A process only
// ever handles a partition's offsets in order from where its group
// committed, so the highest offset handled bounds those it counted.
func (j *LabelJoin) countedBelow(partition int32) int64 {
	j.countedMu.Lock()
	defer j.countedMu.Unlock()
	if n, ok := j.counted[partition]; ok {
		return n
	}
	return -1
}

// countedUpTo records that partition's records up to offset last are
// counted (countedBelow).
func (j *LabelJoin) countedUpTo(partition int32, last int64) {
	j.countedMu.Lock()
	defer j.countedMu.Unlock()
	if j.counted == nil {
		j.counted = map[int32]int64{}
	}
	if n, ok := j.counted[partition]; !ok || last+1 > n {
		j.counted[partition] = last + 1
	}
}

// Observe caches a scored batch's predictions for the label join, and joins
// any labels that arrived before them. It fits Score.Observe.
func (j *LabelJoin) Observe(ctx context.Context, b *pipeline.Batch) error {
	return j.ObserveVersions(ctx, b, nil)
}

// ObserveVersions is Observe with the version that served each row (see
// Score.Versions; nil: the champion's version for all), so that each
// prediction is cached, scored and learned per version.
func (j *LabelJoin) ObserveVersions(ctx context.Context, b *pipeline.Batch, versions []string) error {
	return j.ObserveServed(ctx, b, Served{Versions: versions})
}

// arms returns the arms a join batch uses throughout: Arms loaded once, or
// the join's model alone as the champion.
func (j *LabelJoin) arms() ArmsView {
	if j.Arms != nil {
		return j.Arms.Load()
	}
	return ArmsView{Champion: j.model}
}

// joinBuf holds one join batch's joined rows and the views taught from
// them. It is reused from batch to batch, so that a steady stream of
// batches does not allocate per row.
type joinBuf struct {
	// all is every joined row, with its label, the version that served it
	// and its served score: all.Dense, all.Hashed, y, versions and scores
	// in join order.
	all      models.Rows
	y        []float32
	versions []string
	scores   []float32
	// learned is the rows the champion and the canary learn (the
	// champion's first), with their labels learnedY.
	learned  models.Rows
	learnedY []float32
	// one is a view of a single row of all, for a canary's Learn.
	one models.Rows
	// shadow is the rows the shadow scores and learns, with labels shadowY
	// and its predictions shadowScores; a view of all when it takes every
	// row, else gathered, shadowRows holding their indices in all.
	shadow       models.Rows
	shadowY      []float32
	shadowScores []float32
	shadowRows   []int
}

func (jb *joinBuf) reset(numDense, numHashed int) {
	jb.all = models.Rows{NumDense: numDense, NumHashed: numHashed, Dense: jb.all.Dense[:0], Hashed: jb.all.Hashed[:0]}
	jb.y, jb.versions, jb.scores = jb.y[:0], jb.versions[:0], jb.scores[:0]
}

// add appends one joined row, served by version with score. A batch's rows
// share one feature layout, the one reset was given.
func (jb *joinBuf) add(version string, score float32, dense []float32, hashed []int32, label float32) {
	jb.all.Dense = append(jb.all.Dense, dense...)
	jb.all.Hashed = append(jb.all.Hashed, hashed...)
	jb.all.N++
	jb.y = append(jb.y, label)
	jb.versions = append(jb.versions, version)
	jb.scores = append(jb.scores, score)
}

// appendRow appends row r of src to dst.
func appendRow(dst *models.Rows, src *models.Rows, r int) {
	dst.Dense = append(dst.Dense, src.DenseRow(r)...)
	dst.Hashed = append(dst.Hashed, src.HashedRow(r)...)
	dst.N++
}

// teach teaches the batch's joined rows: the champion learns its rows
// batched, a canary its rows one by one, rows of versions no arm serves
// only score (their outcomes are already out); then OnLearned sees the
// learned rows, and the shadow takes its prequential pass (shadowPass).
func (j *LabelJoin) teach(jb *joinBuf, view *ArmsView, now time.Time) error {
	all, champ := &jb.all, view.Champion
	if all.N == 0 {
		return nil
	}
	jb.learned = models.Rows{NumDense: all.NumDense, NumHashed: all.NumHashed, Dense: jb.learned.Dense[:0], Hashed: jb.learned.Hashed[:0]}
	jb.learnedY = jb.learnedY[:0]
	for r, v := range jb.versions {
		if v == champ.Version {
			appendRow(&jb.learned, all, r)
			jb.learnedY = append(jb.learnedY, jb.y[r])
		}
	}
	if err := j.learn(champ, &jb.learned, jb.learnedY); err != nil {
		return err
	}
	for r, v := range jb.versions {
		if v == champ.Version {
			continue
		}
		m := view.served(v)
		if m == nil {
			continue // a retired version's label only scores
		}
		jb.one = models.Rows{N: 1, NumDense: all.NumDense, NumHashed: all.NumHashed, Dense: all.DenseRow(r), Hashed: all.HashedRow(r)}
		if err := j.learn(m, &jb.one, jb.y[r:r+1]); err != nil {
			return err
		}
		appendRow(&jb.learned, all, r)
		jb.learnedY = append(jb.learnedY, jb.y[r])
	}
	if j.OnLearned != nil && jb.learned.N > 0 {
		j.OnLearned(&jb.learned, jb.learnedY)
	}
	j.shadowPass(jb, view.Shadow, champ.Version, now)
	return nil
}

// shadowPass has the shadow, when set, predict every joined row that
// another version served, emits those predictions as the shadow's
// outcomes (each paired with the champion's served score of its label,
// on the rows the champion's version served), and then teaches it the
// rows. A shadow that cannot predict or learn them does not fail the
// batch: it skips it, and the rows count in shadowSkipped.
func (j *LabelJoin) shadowPass(jb *joinBuf, sh *ServedModel, champion string, now time.Time) {
	if sh == nil {
		return
	}
	all := &jb.all
	rows, y, gathered := all, jb.y, false
	if slices.Contains(jb.versions, sh.Version) {
		// Rows the shadow's version served were scored (and learned, when
		// an arm serves it) as served: leave them out.
		jb.shadow = models.Rows{NumDense: all.NumDense, NumHashed: all.NumHashed, Dense: jb.shadow.Dense[:0], Hashed: jb.shadow.Hashed[:0]}
		jb.shadowY, jb.shadowRows = jb.shadowY[:0], jb.shadowRows[:0]
		for r, v := range jb.versions {
			if v != sh.Version {
				appendRow(&jb.shadow, all, r)
				jb.shadowY = append(jb.shadowY, jb.y[r])
				jb.shadowRows = append(jb.shadowRows, r)
			}
		}
		rows, y, gathered = &jb.shadow, jb.shadowY, true
	}
	if rows.N == 0 {
		return
	}
	if cap(jb.shadowScores) < rows.N {
		jb.shadowScores = make([]float32, rows.N, 2*rows.N)
	}
	scores := jb.shadowScores[:rows.N]
	if err := sh.Predict(scores, rows); err != nil {
		j.metrics.shadowSkipped.Add(float64(rows.N))
		return
	}
	for k, score := range scores {
		r := k
		if gathered {
			r = jb.shadowRows[k]
		}
		o := Outcome{Version: sh.Version, Arm: ArmShadow, ServedArm: ArmShadow, Score: score, Label: y[k], At: now}
		if jb.versions[r] == champion {
			o.Paired, o.PairedScore = true, jb.scores[r]
		}
		j.emit(o)
	}
	if err := sh.Learn(rows, y); err != nil && !errors.Is(err, models.ErrInvalidLabel) {
		j.metrics.shadowSkipped.Add(float64(rows.N))
	}
}

func (j *LabelJoin) outcome(id, version, arm string, step servedStep, score, label float32, now time.Time, src SourcePosition) {
	j.emit(Outcome{ID: id, Version: version, Arm: arm, ServedArm: step.arm, CanaryPercent: step.percent, Score: score, Label: label, At: now,
		Source: src})
}

// emit counts o in the prequential metrics and gives it to OnOutcome.
func (j *LabelJoin) emit(o Outcome) {
	j.metrics.observe(j.model.Name, o.Version, float64(o.Score), float64(o.Label), j.decision)
	if j.OnOutcome != nil {
		j.OnOutcome(o)
	}
}

func (j *LabelJoin) learn(m *ServedModel, rows *models.Rows, y []float32) error {
	if rows.N == 0 {
		return nil
	}
	if err := m.Learn(rows, y); err != nil && !errors.Is(err, models.ErrInvalidLabel) {
		return fmt.Errorf("label join: learn: %w", err)
	}
	return nil
}

// LabelDLQ is where a label join sends the label records it refuses: a
// record LabelDecoder refuses (counted in driftline_labels_invalid_total)
// and a label that would be parked past labels.max_parked (counted in
// driftline_labels_parked_overflow_total). Its records follow the data
// plane's DLQ conventions (pipeline.DLQBuilder: driftline.reason,
// driftline.stage "labels", driftline.source.*, the DLQ payload function).
type LabelDLQ struct {
	// Sink writes the records; nil drops them (they are still counted).
	Sink pipeline.Sink
	// Config is how they are built. Every partition calls its Payload, so
	// it must be safe for concurrent use, unless NewPayload is set.
	Config pipeline.DLQConfig
	// NewPayload, when set, gives each partition a payload function of
	// its own instead (an encrypting one is not safe for concurrent use).
	NewPayload func() pipeline.DLQPayloadFunc
}

// Open implements the Source's open callback for the labels topic without
// a DLQ: refused label records are counted and dropped.
func (j *LabelJoin) Open(topic string, partition int32) (pipeline.PartitionHandler, error) {
	return j.Opener(LabelDLQ{})(topic, partition)
}

// Opener returns the labels topic's open callback: each partition's
// handler joins its label records, and writes the records it refuses to
// dlq before Handle returns, so their offsets are committed only once the
// DLQ holds them.
func (j *LabelJoin) Opener(dlq LabelDLQ) func(topic string, partition int32) (pipeline.PartitionHandler, error) {
	return func(string, int32) (pipeline.PartitionHandler, error) {
		lp := &labelPartition{join: j, dec: NewLabelDecoder(j.spec), sink: dlq.Sink, cleared: -1}
		if dlq.Sink != nil {
			cfg := dlq.Config
			if dlq.NewPayload != nil {
				cfg.Payload = dlq.NewPayload()
			}
			var err error
			if lp.dlq, err = pipeline.NewDLQBuilder(cfg); err != nil {
				return nil, fmt.Errorf("label join: %w", err)
			}
		}
		return lp, nil
	}
}

type labelPartition struct {
	join   *LabelJoin
	dec    *LabelDecoder
	ids    []string
	pos    []string // each label's position on the labels topic
	offs   []int64  // and its offset there
	labels []float32
	// taken names the taken marks the batch being handled wrote, one per
	// joinBatch call; done those the batch's first call deletes (see
	// joinBatch): the last batch's, or with KeepMarksUntilCommitted the
	// generations committed since, from cleared on (-1: none yet).
	taken, done []string
	cleared     int64
	// at is the index in msgs of each of ids.
	at    []int
	buf   joinBuf
	entry cachedPrediction
	// res is each label's joinBatch result.
	res []any
	// refused are the batch's refused records, for the DLQ.
	refused []refusedLabel
	dlq     *pipeline.DLQBuilder
	sink    pipeline.Sink
}

// refusedLabel is a label record the join refused.
type refusedLabel struct {
	msg int
	rej pipeline.Rejection
}

func (lp *labelPartition) Close() {}

// labelTally is what one label batch adds to the label counters. Handle
// adds it once the batch went through: a batch that fails is handled
// again, and counted then, so that every label record is counted once.
type labelTally struct {
	joined, late, early, invalid, parkedOverflow int
	// records is the batch's records counted (not delivered again,
	// LabelJoin.countedBelow), of which the above count every one.
	records int
	// seen is the offset below which the batch's records were counted
	// already, by an earlier delivery to this process.
	seen int64
}

// counts says whether the record at offset is counted: not delivered to
// this process again (LabelJoin.countedBelow).
func (t *labelTally) counts(offset int64) bool { return offset >= t.seen }

// Handle joins one batch of label records and learns from them.
func (lp *labelPartition) Handle(ctx context.Context, msgs []pipeline.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	t := labelTally{seen: -1}
	// In log mode a writer restored from an earlier publish joins its
	// labels again, and counts them again (see labeljoin_log.go).
	remember := !lp.join.cache.keep
	if remember {
		t.seen = lp.join.countedBelow(msgs[0].Partition)
	}
	last := msgs[0].Offset
	for i := range msgs {
		if t.counts(msgs[i].Offset) {
			t.records++
		}
		last = max(last, msgs[i].Offset)
	}
	if err := lp.handle(ctx, msgs, &t); err != nil {
		return err
	}
	if lp.join.cache.labelsCommitted == nil {
		lp.done = append(lp.done, lp.taken...) // the next call deletes them
	}
	m := lp.join.metrics
	m.joined.Add(float64(t.joined))
	m.late.Add(float64(t.late))
	m.early.Add(float64(t.early))
	m.invalid.Add(float64(t.invalid))
	m.parkedOverflow.Add(float64(t.parkedOverflow))
	lp.join.processed.Add(int64(t.records))
	if remember {
		lp.join.countedUpTo(msgs[0].Partition, last)
	}
	return nil
}

func (lp *labelPartition) handle(ctx context.Context, msgs []pipeline.Message, t *labelTally) error {
	j := lp.join
	c := j.cache
	lp.ids, lp.labels, lp.at, lp.pos, lp.offs, lp.refused, lp.taken = lp.ids[:0], lp.labels[:0], lp.at[:0], lp.pos[:0], lp.offs[:0], lp.refused[:0], lp.taken[:0]
	for i := range msgs {
		id, label, rej := lp.dec.Decode(msgs[i].Value)
		if rej.Reason != "" {
			if t.counts(msgs[i].Offset) {
				t.invalid++
			}
			lp.refused = append(lp.refused, refusedLabel{i, rej})
			continue
		}
		lp.ids = append(lp.ids, id)
		lp.labels = append(lp.labels, label)
		lp.at = append(lp.at, i)
		lp.pos = append(lp.pos, labelPosition(&msgs[i]))
		lp.offs = append(lp.offs, msgs[i].Offset)
	}
	if len(lp.ids) == 0 {
		return lp.writeRefused(ctx, msgs)
	}
	// One script call per chunk of labels (joinBatch).
	now := c.now()
	jb := &lp.buf
	jb.reset(0, 0)
	parked := 0
	view := j.arms()
	lp.res = lp.res[:0]
	partition := msgs[0].Partition
	cleared := lp.cleared
	if c.labelsCommitted != nil && !c.keep {
		lp.done, cleared = c.committedTaken(lp.done[:0], partition, lp.offs[0], lp.cleared)
	} else if first := c.takenMarks(partition, lp.offs[0]); first != "" {
		// The last batch's generation that this one writes in too is kept
		// (a run again of this batch needs its own marks there); it goes
		// with the first batch past it.
		lp.done = slices.DeleteFunc(lp.done, func(d string) bool { return d == first })
	}
	// One call per chunk; its labels' taken marks are in at most two
	// generations (a chunk is cut where a third would start).
	for from, to := 0, 0; from < len(lp.ids); from = to {
		to = min(from+labelPlaneChunk, len(lp.ids))
		split := lp.takenSplit(from, &to)
		taken := [2]string{c.takenMarks(partition, lp.offs[from]), c.takenMarks(partition, lp.offs[to-1])}
		res, err := c.joinLabels(ctx, lp.ids[from:to], lp.labels[from:to], lp.pos[from:to], taken, split, lp.done)
		if err != nil {
			return fmt.Errorf("label join: %w", err)
		}
		lp.done, lp.cleared = lp.done[:0], cleared
		for _, name := range taken {
			if name != "" && !slices.Contains(lp.taken, name) {
				lp.taken = append(lp.taken, name)
			}
		}
		lp.res = append(lp.res, res...)
	}
	// The refused labels reach the DLQ before any label of the batch is
	// taught or its outcome published: a batch whose DLQ write failed is
	// handed to the join again, which finds its labels' taken marks and
	// joins them again, and must not teach them twice.
	for i, r := range lp.res {
		r, ok := r.(int64)
		if !ok {
			continue
		}
		rej := pipeline.Rejection{Stage: StageLabels, Reason: ReasonLabelParkedFull,
			Detail: "its prediction is not cached yet and labels.max_parked labels are parked already"}
		counts := t.counts(msgs[lp.at[i]].Offset)
		if r == joinRefusedDuplicate {
			if counts {
				t.invalid++
			}
			rej.Reason, rej.Detail = ReasonLabelDuplicate, "another label of its event is parked, or joined its prediction"
		} else if counts {
			t.parkedOverflow++
		}
		lp.refused = append(lp.refused, refusedLabel{lp.at[i], rej})
	}
	if err := lp.writeRefused(ctx, msgs); err != nil {
		return err
	}
	for i, r := range lp.res {
		counts := t.counts(msgs[lp.at[i]].Offset)
		var raw string
		switch r := r.(type) {
		case nil:
			if counts {
				parked++
			}
			continue
		case int64:
			continue // refused above
		case string:
			raw = r
		default:
			return fmt.Errorf("label join: a reply of %T for a label", r)
		}
		if err := decodeEntry([]byte(raw), &lp.entry); err != nil {
			if counts {
				t.invalid++
			}
			continue
		}
		if c.keep {
			j.noteJoined(lp.ids[i])
		}
		e := &lp.entry
		switch {
		case !counts:
			// Joined again from its mark: counted when first joined (it
			// is taught and given to OnOutcome again, at least once).
		case now.Sub(e.at) > c.ttl:
			t.late++
		default:
			t.joined++
		}
		j.outcome(lp.ids[i], e.version, view.armOf(e.version), e.step, e.score, lp.labels[i], now, positionOf(&msgs[lp.at[i]]))
		if nd, nh := len(e.dense), len(e.hashed); jb.all.N == 0 || nd != jb.all.NumDense || nh != jb.all.NumHashed {
			// The rows gathered so far share one feature layout; an entry
			// cached with another (before a featurize change) starts a new
			// run, taught on its own.
			if err := j.teach(jb, &view, now); err != nil {
				return err
			}
			jb.reset(nd, nh)
		}
		jb.add(e.version, e.score, e.dense, e.hashed, lp.labels[i])
	}
	t.early = parked
	err := j.teach(jb, &view, now)
	j.metrics.publish()
	return err
}

// takenSplit cuts the labels [from, *to) where a third generation of
// taken marks would start, and returns how many are in the first one.
func (lp *labelPartition) takenSplit(from int, to *int) int {
	first, split := takenGen(lp.offs[from]), *to-from
	for k := from + 1; k < *to; k++ {
		switch g := takenGen(lp.offs[k]); {
		case k-from <= split && g == first:
		case split == *to-from:
			split = k - from // the second generation starts
		case g != takenGen(lp.offs[from+split]):
			*to = k // a third
			return split
		}
	}
	return split
}

// writeRefused writes the batch's refused records to the DLQ and waits
// for them to be acknowledged.
func (lp *labelPartition) writeRefused(ctx context.Context, msgs []pipeline.Message) error {
	if len(lp.refused) == 0 || lp.sink == nil {
		return nil
	}
	lp.dlq.Begin()
	recs := make([]pipeline.OutRecord, 0, len(lp.refused))
	for _, r := range lp.refused {
		rec, _, err := lp.dlq.Record(&msgs[r.msg], &r.rej)
		if err != nil {
			return fmt.Errorf("label join: %w", err)
		}
		recs = append(recs, rec)
	}
	if err := lp.sink.Write(ctx, recs); err != nil {
		return fmt.Errorf("label join: dlq: %w", err)
	}
	return nil
}
