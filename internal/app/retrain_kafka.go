package app

// The retrain rows of rollout.retrain.source kafka: a replay of the recent
// input and labels topics, instead of the in-memory window.

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/pipeline/replay"
	"github.com/driftline/driftline/stages"
)

// retrainReplayRun names a retrain replay's Redis state: its stages keep
// their state under <redis.key_prefix>replay:retrain:<nonce>: (see
// replayStateSpec), fresh for every call.
const retrainReplayRun = "retrain"

// retrainLabelsPerRow bounds the labels a kafka source holds while it
// replays: retrainLabelsPerRow × window, the newest by timestamp.
const retrainLabelsPerRow = 4

// KafkaRetrainRows is the governance.RowSource of rollout.retrain.source
// kafka: the issue's "replaying recent events and labels from Kafka
// offsets". Unlike the governance.Window it needs no warm-up after a
// restart and sees every label of the labels topic, not only this
// instance's share.
//
// RowsSince(since) replays the input topic's records with Kafka
// timestamps in [start, now), mapped to offsets per partition with the
// broker's time index (as `replay --from-time/--to-time`), through the
// preparation stages of the live data plane (decode, validate, dedupe,
// anonymize, featurize: stages.PreparationChain); the rows it trains on
// are those with timestamps in [from, now), from = max(since,
// now-lookback), and the records in [start, from), start = max(from -
// warmup, now - lookback), only warm the stateful stages (see
// pipeline.RetrainSpec.Warmup). Their Redis state lives under a fresh
// replay prefix, so a replayed event is not a duplicate of its live run
// and the live dedupe set and entity aggregates are never read or
// written; the prefix's keys are deleted when the call returns. It first
// reads the labels topic's records with timestamps in [from, now), up to
// its end offsets at call time (labels come after their events), and
// joins labels to rows by schema.id_field; a later label of an id wins.
// It returns the window newest joined rows (by Kafka timestamp, then
// partition and offset), oldest first. The lineage's partition ranges are
// the offsets of [from, now), the rows' span, without the warm-up.
//
// Known skews against the rows the live label join learns:
//   - entity aggregates and dedupe start empty at start: an entity's
//     count, mean and time since its previous event count only its events
//     since start (live features count its whole history within the TTL),
//     and a duplicate whose first copy came before start is kept. The
//     warm-up makes this small when an entity's history is mostly within
//     warmup of the rows; with warmup 0 it starts at the rows' first;
//   - rows are events at or after since, where the window gives rows
//     labelled at or after since.
//
// Memory: at most window rows' features, and an id → label map of at most
// retrainLabelsPerRow × window labels; when the range holds more labels
// the oldest are dropped (their events are older than the newest window
// rows in all but a reordered stream), and the number dropped is logged.
//
// CountSince is cheap: two offset lookups by time on the labels topic.
// Each call opens its own Kafka clients, from the ClientConfig it was
// given; it is safe for concurrent use.
type KafkaRetrainRows struct {
	retrainHistory
	cc kafka.ClientConfig
}

// retrainHistory is what the retrain sources that read history (kafka,
// lake) share: the spec (topics, schema, stages and Redis key prefix), the
// stateful stages' Redis, the feature layout (the learner's) and the
// retrain window.
type retrainHistory struct {
	spec                *pipeline.Spec
	rdb                 redis.UniversalClient
	numDense, numHashed int
	window              int
	lookback, warmup    time.Duration
	log                 *slog.Logger
	now                 func() time.Time
}

// newRetrainHistory checks spec's rollout.retrain.lookback and takes its
// window; log defaults to discarding.
func newRetrainHistory(spec *pipeline.Spec, rdb redis.UniversalClient, numDense, numHashed int, log *slog.Logger) (retrainHistory, error) {
	rt := spec.Rollout.RetrainOrDefault()
	if rt.Lookback.D() < time.Second {
		return retrainHistory{}, fmt.Errorf("rollout.retrain.lookback: must be at least 1s, got %s", rt.Lookback.D())
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return retrainHistory{spec: spec, rdb: rdb, numDense: numDense, numHashed: numHashed,
		window: max(rt.Window, 1), lookback: rt.Lookback.D(), warmup: rt.Warmup.D(), log: log, now: time.Now}, nil
}

// span is the time range a call covers: [max(since, now-lookback), now).
func (h *retrainHistory) span(since time.Time) (from, to time.Time) {
	to = h.now()
	from = to.Add(-h.lookback)
	if since.After(from) {
		from = since
	}
	return from, to
}

// replayStart is where a call's replay starts, warm-up included:
// max(from - warmup, to - lookback), for the span [from, to) of span.
func (h *retrainHistory) replayStart(from, to time.Time) time.Time {
	start := from.Add(-h.warmup)
	if floor := to.Add(-h.lookback); floor.After(start) {
		start = floor
	}
	return start
}

// NewKafkaRetrainRows builds the kafka source of spec's rollout.retrain,
// reaching the brokers with cc, for features of numDense dense and
// numHashed hashed values. rdb holds the stateful stages' state (nil when
// neither dedupe nor entity aggregates run); log defaults to discarding.
func NewKafkaRetrainRows(spec *pipeline.Spec, cc kafka.ClientConfig, rdb redis.UniversalClient, numDense, numHashed int, log *slog.Logger) (*KafkaRetrainRows, error) {
	switch {
	case len(cc.Brokers) == 0:
		return nil, errors.New("rollout.retrain.source kafka: no Kafka brokers")
	case spec.Topics.Labels == "":
		return nil, errors.New("rollout.retrain.source kafka: topics.labels is not set")
	}
	if err := cc.Validate(); err != nil {
		return nil, fmt.Errorf("rollout.retrain.source kafka: %w", err)
	}
	h, err := newRetrainHistory(spec, rdb, numDense, numHashed, log)
	if err != nil {
		return nil, err
	}
	return &KafkaRetrainRows{retrainHistory: h, cc: cc}, nil
}

// CountSince is the number of label records with timestamps in
// [max(since, now-lookback), now), at most window: an upper bound on the
// rows RowsSince gives, since a row's label comes after its event.
func (k *KafkaRetrainRows) CountSince(ctx context.Context, since time.Time) (int, error) {
	from, to := k.span(since)
	adm, err := kafka.NewAdmin(k.cc)
	if err != nil {
		return 0, fmt.Errorf("retrain source kafka: %w", err)
	}
	defer adm.Close()
	ranges, err := k.labelRanges(ctx, adm, from, to)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, r := range ranges {
		n += r.End - r.Start
	}
	return int(min(n, int64(k.window))), nil
}

// RowsSince implements governance.RowSource (see KafkaRetrainRows).
func (k *KafkaRetrainRows) RowsSince(ctx context.Context, since time.Time) (models.Rows, []float32, registry.Source, error) {
	rows, err := k.replay(ctx, since)
	if err != nil {
		return models.Rows{}, nil, registry.Source{}, err
	}
	return rows.rows(), rows.y, rows.source, nil
}

// labelRanges is, per partition of the labels topic, the offsets of the
// records with timestamps in [from, to) (with to = now: up to the end
// offsets now, but for a label stamped after now by a skewed clock, which
// the next call reads).
func (k *KafkaRetrainRows) labelRanges(ctx context.Context, adm *kafka.Admin, from, to time.Time) ([]replay.Range, error) {
	ranges, err := adm.TimeRanges(ctx, k.spec.Topics.Labels, from, to)
	if err != nil {
		return nil, fmt.Errorf("retrain source kafka: labels topic %s: %w", k.spec.Topics.Labels, err)
	}
	return ranges, nil
}

// inputRange is a partition's offsets of the rows' span [from, to), and
// the offset its replay starts at: the first of the warm-up (at most
// Start).
type inputRange struct {
	replay.Range
	warmStart int64
}

// inputRanges maps the rows' span [from, to) and its warm-up onto the
// input topic's offsets, per partition.
func (k *KafkaRetrainRows) inputRanges(ctx context.Context, adm *kafka.Admin, from, to time.Time) ([]inputRange, error) {
	input := k.spec.Topics.Input
	span, err := adm.TimeRanges(ctx, input, from, to)
	if err != nil {
		return nil, err
	}
	out := make([]inputRange, len(span))
	for i, r := range span {
		out[i] = inputRange{Range: r, warmStart: r.Start}
	}
	start := k.replayStart(from, to)
	if !start.Before(from) {
		return out, nil
	}
	warm, err := adm.TimeRanges(ctx, input, start, from)
	if err != nil {
		return nil, fmt.Errorf("warm-up from %s: %w", start.UTC().Format(time.RFC3339), err)
	}
	if len(warm) != len(span) {
		return nil, fmt.Errorf("warm-up: %d partitions, the rows' span %d (partitions added meanwhile; the next retrain sees them)", len(warm), len(span))
	}
	for i := range out {
		if warm[i].Partition != out[i].Partition {
			return nil, fmt.Errorf("warm-up: partition %d where the rows' span has %d", warm[i].Partition, out[i].Partition)
		}
		out[i].warmStart = min(warm[i].Start, out[i].Start)
	}
	return out, nil
}

// replay reads the labels, replays the input range and joins them.
func (k *KafkaRetrainRows) replay(ctx context.Context, since time.Time) (*newestRows, error) {
	spec := k.spec
	from, to := k.span(since)
	input := spec.Topics.Input
	adm, err := kafka.NewAdmin(k.cc)
	if err != nil {
		return nil, fmt.Errorf("retrain source kafka: %w", err)
	}
	ranges, err := k.inputRanges(ctx, adm, from, to)
	if err != nil {
		adm.Close()
		return nil, fmt.Errorf("retrain source kafka: input topic %s: %w", input, err)
	}
	labelRanges, err := k.labelRanges(ctx, adm, from, to)
	adm.Close()
	if err != nil {
		return nil, err
	}
	labels := newRecentLabels(retrainLabelsPerRow * k.window)
	if err := k.readLabels(ctx, labelRanges, labels); err != nil {
		return nil, err
	}

	s := replayStateSpec(spec, retrainReplayRun)
	keys, err := stages.LoadKeys(&s.Stages.Anonymize)
	if err != nil {
		return nil, fmt.Errorf("retrain source kafka: stages.anonymize: %w", err)
	}
	prep, err := stages.PreparationChain(s, k.rdb, keys)
	if err != nil {
		return nil, fmt.Errorf("retrain source kafka: %w", err)
	}
	onRecordTime(prep) // as a replay's: the window follows the records' time
	d, err := replay.NewDirect(replay.DirectConfig{Stages: prep, BatchSize: spec.Batch.Size})
	if err != nil {
		_ = pipeline.CloseStages(prep)
		return nil, fmt.Errorf("retrain source kafka: %w", err)
	}
	defer d.Close()
	in, err := kafka.NewReader(k.cc)
	if err != nil {
		return nil, fmt.Errorf("retrain source kafka: %w", err)
	}
	if k.rdb != nil && (spec.Stages.Dedupe.On() || spec.Stages.Featurize.Entity != nil) {
		defer func() {
			dropCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if err := dropKeys(dropCtx, k.rdb, s.Redis.Prefix()); err != nil {
				k.log.Warn("retrain: delete the replay's state (it expires with the spec's TTLs)", "prefix", s.Redis.Prefix(), "err", err)
			}
		}()
	}
	out := newNewestRows(min(k.window, labels.len()), k.numDense, k.numHashed)
	out.source = registry.Source{Topic: input, From: from.UTC(), To: to.UTC()}
	idCol := spec.FieldIndex(spec.Schema.IDField)
	fromMs, toMs := from.UnixMilli(), to.UnixMilli()
	var joined, warmed int64
	visit := func(b *pipeline.Batch) error {
		fb := &b.Features
		if fb.Len() == 0 {
			return nil
		}
		if fb.NumDense != k.numDense || fb.NumHashed != k.numHashed {
			return fmt.Errorf("featurize gives %d dense and %d hashed features, the learner takes %d and %d", fb.NumDense, fb.NumHashed, k.numDense, k.numHashed)
		}
		for j, i := range fb.Row {
			m := &b.Messages[i]
			ms := m.Timestamp.UnixMilli()
			if ms < fromMs {
				warmed++ // the warm-up's, or a record stamped out of order
				continue
			}
			if ms >= toMs {
				continue
			}
			y, ok := labels.get(stages.EventID(b, idCol, i))
			if !ok {
				continue
			}
			joined++
			out.add(rowPos{ms: ms, partition: m.Partition, offset: m.Offset},
				fb.Dense[j*fb.NumDense:(j+1)*fb.NumDense], fb.Hashed[j*fb.NumHashed:(j+1)*fb.NumHashed], y)
		}
		return nil
	}
	for _, r := range ranges {
		if r.End <= r.Start {
			continue
		}
		// One partition at a time, so that an error names its partition.
		w := replay.Range{Partition: r.Partition, Start: r.warmStart, End: r.End}
		if err := d.ReplayRanges(ctx, in, input, []replay.Range{w}, visit); err != nil {
			return nil, fmt.Errorf("retrain source kafka: replay input topic %s partition %d offsets [%d, %d): %w", input, w.Partition, w.Start, w.End, err)
		}
		out.source.Partitions = append(out.source.Partitions, registry.PartitionRange{Partition: r.Partition, From: r.Start, To: r.End})
	}
	out.finish()
	k.log.Info("retrain: replayed the input topic and joined its labels",
		"topic", input, "labels_topic", spec.Topics.Labels, "from", out.source.From, "to", out.source.To,
		"partitions", len(out.source.Partitions), "replayed", d.Inputs(), "warmup_rows", warmed, "rejected", d.Rejected(),
		"labels", labels.read, "labels_dropped", labels.dropped, "labels_malformed", labels.malformed,
		"joined", joined, "rows", len(out.y))
	return out, nil
}

// readLabels reads ranges of the labels topic, with read-committed
// isolation, into labels.
func (k *KafkaRetrainRows) readLabels(ctx context.Context, ranges []replay.Range, labels *recentLabels) error {
	topic := k.spec.Topics.Labels
	dec := stages.NewLabelDecoder(k.spec)
	err := kafka.ReadRanges(ctx, k.cc, topic, ranges, true, func(r *kafka.Record) error {
		id, y, rej := dec.Decode(r.Value)
		if rej.Reason != "" {
			labels.malformed++
			return nil
		}
		labels.put(id, y, r.Timestamp.UnixMilli())
		return nil
	})
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("retrain source kafka: labels %w", err)
	}
	return err
}

// recentLabels is an id → label map holding the labels with the newest
// timestamps, at most max of them: past max, the oldest are dropped.
type recentLabels struct {
	max  int
	byID map[string]labelEntry
	// order holds every label put (a later label of an id makes its
	// earlier entry stale), oldest timestamp on top.
	order labelHeap
	seq   uint64
	// read, dropped and malformed count label records.
	read, dropped, malformed int64
}

type labelEntry struct {
	y   float32
	ms  int64
	seq uint64
}

// labelAt is a label put at seq, with its timestamp (unix milliseconds).
type labelAt struct {
	ms  int64
	seq uint64
	id  string
}

// labelHeap is a min-heap of labels by timestamp, then put order.
type labelHeap []labelAt

func (h labelHeap) Len() int { return len(h) }
func (h labelHeap) Less(i, j int) bool {
	return h[i].ms < h[j].ms || h[i].ms == h[j].ms && h[i].seq < h[j].seq
}
func (h labelHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *labelHeap) Push(x any)   { *h = append(*h, x.(labelAt)) }
func (h *labelHeap) Pop() any {
	old := *h
	a := old[len(old)-1]
	*h = old[:len(old)-1]
	return a
}

func newRecentLabels(max int) *recentLabels {
	return &recentLabels{max: max, byID: map[string]labelEntry{}}
}

func (l *recentLabels) len() int { return len(l.byID) }

func (l *recentLabels) get(id string) (float32, bool) {
	e, ok := l.byID[id]
	return e.y, ok
}

// put adds a label with its timestamp (unix milliseconds); it replaces an
// earlier label of the same id.
func (l *recentLabels) put(id string, y float32, ms int64) {
	l.read++
	l.seq++
	l.byID[id] = labelEntry{y: y, ms: ms, seq: l.seq}
	heap.Push(&l.order, labelAt{ms: ms, seq: l.seq, id: id})
	for len(l.byID) > l.max {
		top := heap.Pop(&l.order).(labelAt)
		if e, ok := l.byID[top.id]; ok && e.seq == top.seq {
			delete(l.byID, top.id)
			l.dropped++
		}
	}
	if len(l.order) > 2*l.max+16 { // stale entries of replaced labels
		l.order = l.order[:0]
		for id, e := range l.byID {
			l.order = append(l.order, labelAt{ms: e.ms, seq: e.seq, id: id})
		}
		heap.Init(&l.order)
	}
}

// rowPos orders rows: Kafka timestamp (unix milliseconds), then partition
// and offset.
type rowPos struct {
	ms        int64
	partition int32
	offset    int64
}

func (a rowPos) before(b rowPos) bool {
	if a.ms != b.ms {
		return a.ms < b.ms
	}
	if a.partition != b.partition {
		return a.partition < b.partition
	}
	return a.offset < b.offset
}

// newestRows keeps the max newest rows added (by rowPos), in place: until
// it is full the rows are appended; then they form a min-heap on rowPos
// and a newer row replaces the oldest. finish sorts them oldest first. Its
// sort.Interface moves whole rows.
type newestRows struct {
	max, nd, nh int
	dense       []float32
	hashed      []int32
	y           []float32
	at          []rowPos
	heaped      bool
	source      registry.Source
}

func newNewestRows(max, numDense, numHashed int) *newestRows {
	return &newestRows{max: max, nd: numDense, nh: numHashed,
		dense: make([]float32, 0, max*numDense), hashed: make([]int32, 0, max*numHashed),
		y: make([]float32, 0, max), at: make([]rowPos, 0, max)}
}

func (s *newestRows) add(p rowPos, dense []float32, hashed []int32, y float32) {
	if len(s.y) < s.max {
		s.dense, s.hashed = append(s.dense, dense...), append(s.hashed, hashed...)
		s.y, s.at = append(s.y, y), append(s.at, p)
		return
	}
	if s.max == 0 {
		return
	}
	if !s.heaped {
		for i := s.Len()/2 - 1; i >= 0; i-- {
			s.down(i)
		}
		s.heaped = true
	}
	if !s.at[0].before(p) {
		return // older than every row kept
	}
	copy(s.dense[:s.nd], dense)
	copy(s.hashed[:s.nh], hashed)
	s.y[0], s.at[0] = y, p
	s.down(0)
}

func (s *newestRows) down(i int) {
	for n := s.Len(); ; {
		c := 2*i + 1
		if c >= n {
			return
		}
		if c+1 < n && s.Less(c+1, c) {
			c++
		}
		if !s.Less(c, i) {
			return
		}
		s.Swap(i, c)
		i = c
	}
}

// finish sorts the rows oldest first.
func (s *newestRows) finish() { sort.Sort(s) }

func (s *newestRows) Len() int           { return len(s.y) }
func (s *newestRows) Less(i, j int) bool { return s.at[i].before(s.at[j]) }
func (s *newestRows) Swap(i, j int) {
	for k := range s.nd {
		s.dense[i*s.nd+k], s.dense[j*s.nd+k] = s.dense[j*s.nd+k], s.dense[i*s.nd+k]
	}
	for k := range s.nh {
		s.hashed[i*s.nh+k], s.hashed[j*s.nh+k] = s.hashed[j*s.nh+k], s.hashed[i*s.nh+k]
	}
	s.y[i], s.y[j] = s.y[j], s.y[i]
	s.at[i], s.at[j] = s.at[j], s.at[i]
}

// rows is the kept rows' features, sharing their memory.
func (s *newestRows) rows() models.Rows {
	return models.Rows{N: len(s.y), NumDense: s.nd, NumHashed: s.nh, Dense: s.dense, Hashed: s.hashed}
}

// dropKeys deletes every key under prefix (on each master of a cluster).
func dropKeys(ctx context.Context, rdb redis.UniversalClient, prefix string) error {
	match := globEscape(prefix) + "*"
	drop := func(ctx context.Context, c redis.Cmdable) error {
		it := c.Scan(ctx, 0, match, 1000).Iterator()
		var keys []string
		flush := func() error {
			if len(keys) == 0 {
				return nil
			}
			// One key per UNLINK: a cluster node refuses keys of several slots.
			_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, key := range keys {
					p.Unlink(ctx, key)
				}
				return nil
			})
			keys = keys[:0]
			return err
		}
		for it.Next(ctx) {
			if keys = append(keys, it.Val()); len(keys) == 1000 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := it.Err(); err != nil {
			return err
		}
		return flush()
	}
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return drop(ctx, c) })
	}
	return drop(ctx, rdb)
}

// globEscape escapes the characters a Redis MATCH pattern treats specially.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
