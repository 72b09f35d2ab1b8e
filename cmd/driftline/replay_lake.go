package main

// Replay without Kafka transactions: from lake files (--lake), to lake
// files (--to-lake), and the backtest (--backtest).
//
// # Lake rows as a pipeline.Batch
//
// A lake file holds the columns of the batch record the live sink wrote
// after the score stage (decoded, validated, de-duplicated, anonymized:
// one column per spec schema field, in schema order) followed by the
// lake's driftline_* columns. lakeBatch rebuilds a pipeline.Batch from
// them: Record is the schema-field columns (checked by name against the
// spec), State is RowOK for every row, and each Message carries the
// row's source topic, partition and offset (driftline_source_*) and, as
// Timestamp, its driftline_event_time; Key and Value are empty (the JSON
// is gone). A batch never mixes source partitions. Only featurize and
// score run on it: decode, validate, dedupe and anonymize already ran
// before the rows reached the lake, and running anonymize again would
// hash the pseudonyms twice.
//
// # Determinism and idempotence
//
// Sources are read in a fixed order (Kafka: partition by partition in
// offset order; lake: manifest order), one batch at a time, so the same
// input and model give the same rows, scores and file contents (file
// names hold a random part). A --to-lake run writes into DIR.partial and
// renames it to DIR when it completes, with a _replay.json naming the run;
// re-running the same run finds it and writes nothing, a killed run is
// redone from the start (its partial directory is discarded).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/connectors/lake"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
)

// directSource is where a direct replay reads its history from.
type directSource struct {
	// LakeDir, when set, is the lake to read rows from, restricted to
	// event times in [From, To) (zero: unbounded).
	LakeDir  string
	From, To time.Time
	// Ranges (with Brokers) are the Kafka input offsets otherwise.
	Ranges  []replayRange
	Brokers []string
}

// directReplay runs a source through the stages and hands every batch,
// after featurize, to visit.
type directReplay struct {
	spec      *pipeline.Spec
	rdb       redis.UniversalClient
	batchSize int
	progress  *replayProgress
	// prep runs on Kafka messages (decode … featurize); lakePrep on lake
	// rows (featurize only).
	prep, lakePrep []pipeline.Stage
	inputs         int64
	rejected       int64
	// labels and labelOK are the lake's joined labels of the current lake
	// batch's rows (empty for Kafka batches).
	labels  []float32
	labelOK []bool
}

func newDirectReplay(spec *pipeline.Spec, rdb redis.UniversalClient, runID string, batchSize int, prog *replayProgress) (*directReplay, error) {
	s := *spec
	s.Redis.KeyPrefix = spec.Redis.KeyPrefix + "replay:" + runID + ":" + randomHex(4) + ":"
	keys, err := stages.LoadKeys(&s.Stages.Anonymize)
	if err != nil {
		return nil, fmt.Errorf("stages.anonymize: %w", err)
	}
	prep, err := stages.PreparationChain(&s, rdb, keys)
	if err != nil {
		return nil, err
	}
	fz, err := stages.NewFeaturize(&s, rdb)
	if err != nil {
		return nil, err
	}
	return &directReplay{spec: &s, rdb: rdb, batchSize: max(batchSize, 1), progress: prog, prep: prep, lakePrep: []pipeline.Stage{fz}}, nil
}

// run reads src and calls visit with each featurized batch, in order.
func (d *directReplay) run(ctx context.Context, src directSource, visit func(*pipeline.Batch) error) error {
	if src.LakeDir != "" {
		return d.runLake(ctx, src, visit)
	}
	return d.runKafka(ctx, src, visit)
}

func (d *directReplay) process(ctx context.Context, list []pipeline.Stage, b *pipeline.Batch, visit func(*pipeline.Batch) error) error {
	for _, st := range list {
		if err := st.Process(ctx, b); err != nil {
			return fmt.Errorf("%s: %w", st.Name(), err)
		}
	}
	for i := range b.Len() {
		if !b.OK(i) {
			d.rejected++
		}
	}
	d.inputs += int64(b.Len())
	if d.progress != nil {
		d.progress.add(int64(b.Len()))
	}
	return visit(b)
}

func (d *directReplay) runKafka(ctx context.Context, src directSource, visit func(*pipeline.Batch) error) error {
	var total int64
	for _, r := range src.Ranges {
		total += r.End - r.Start
	}
	if d.progress != nil {
		d.progress.begin(total, 0)
	}
	var b pipeline.Batch
	defer b.Reset(nil)
	for _, r := range src.Ranges {
		if r.End <= r.Start {
			continue
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(src.Brokers...),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{d.spec.Topics.Input: {r.Partition: kgo.NewOffset().At(r.Start)}}),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
		if err != nil {
			return fmt.Errorf("--brokers: %w", err)
		}
		var msgs []pipeline.Message
		flush := func() error {
			if len(msgs) == 0 {
				return nil
			}
			d.labels, d.labelOK = d.labels[:0], d.labelOK[:0]
			b.Reset(msgs)
			err := d.process(ctx, d.prep, &b, visit)
			msgs = nil
			return err
		}
		next := r.Start
		for next < r.End {
			fs := cl.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				cl.Close()
				return err
			}
			var ferr error
			fs.EachError(func(_ string, _ int32, err error) { ferr = err })
			if ferr != nil {
				cl.Close()
				return fmt.Errorf("fetch partition %d: %w", r.Partition, ferr)
			}
			for it := fs.RecordIter(); !it.Done() && next < r.End; {
				rec := it.Next()
				if rec.Offset < next {
					continue
				}
				if rec.Offset >= r.End {
					next = r.End
					break
				}
				next = rec.Offset + 1
				if !rec.Attrs.IsControl() {
					msgs = append(msgs, pipeline.Message{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Key: rec.Key, Value: rec.Value, Timestamp: rec.Timestamp})
				}
				if len(msgs) >= d.batchSize {
					if err := flush(); err != nil {
						cl.Close()
						return err
					}
				}
			}
		}
		err = flush()
		cl.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// lakeColumns locates the columns of a lake record.
type lakeColumns struct {
	fields                    []int // spec schema fields, in schema order
	topic, part, off, evtTime int
	label                     int // -1 when absent
}

func lakeColumnsOf(spec *pipeline.Spec, s *arrow.Schema) (lakeColumns, error) {
	one := func(name string) (int, error) {
		idx := s.FieldIndices(name)
		if len(idx) != 1 {
			return 0, fmt.Errorf("--lake: files have no column %s", name)
		}
		return idx[0], nil
	}
	var c lakeColumns
	var err error
	for _, f := range spec.Schema.Fields {
		i, e := one(f.Name)
		if e != nil {
			return c, fmt.Errorf("%w (the spec's schema field; is this the lake of this spec?)", e)
		}
		c.fields = append(c.fields, i)
	}
	if c.topic, err = one(lake.ColSourceTopic); err != nil {
		return c, err
	}
	if c.part, err = one(lake.ColSourcePartition); err != nil {
		return c, err
	}
	if c.off, err = one(lake.ColSourceOffset); err != nil {
		return c, err
	}
	if c.evtTime, err = one(lake.ColEventTime); err != nil {
		return c, err
	}
	c.label = -1
	if idx := s.FieldIndices(lake.ColLabel); len(idx) == 1 {
		c.label = idx[0]
	}
	return c, nil
}

// lakeRowsEstimate is the rows of the manifest's files that overlap
// [From, To): the progress total (exact when the range is unbounded or
// covers whole files).
func lakeRowsEstimate(src directSource) (int64, error) {
	entries, err := lake.ReadManifest(src.LakeDir)
	if err != nil {
		return 0, fmt.Errorf("--lake %s: %w", src.LakeDir, err)
	}
	var n int64
	for _, e := range entries {
		if !src.From.IsZero() && e.MaxEventTime.Before(src.From) || !src.To.IsZero() && !e.MinEventTime.Before(src.To) {
			continue
		}
		n += e.Rows
	}
	return n, nil
}

func (d *directReplay) runLake(ctx context.Context, src directSource, visit func(*pipeline.Batch) error) error {
	if _, err := os.Stat(filepath.Join(src.LakeDir, lake.ManifestName)); err != nil {
		return fmt.Errorf("--lake %s: not a lake: %w", src.LakeDir, err)
	}
	if d.progress != nil {
		total, err := lakeRowsEstimate(src)
		if err != nil {
			return err
		}
		d.progress.begin(total, 0)
	}
	var (
		b    pipeline.Batch
		cols lakeColumns
		have bool
	)
	defer b.Reset(nil)
	for rec, err := range lake.ReadFiles(ctx, src.LakeDir, src.From, src.To) {
		if err != nil {
			return fmt.Errorf("--lake %s: %w", src.LakeDir, err)
		}
		if !have {
			if cols, err = lakeColumnsOf(d.spec, rec.Schema()); err != nil {
				return err
			}
			have = true
		}
		topics := rec.Column(cols.topic).(*array.String)
		parts := rec.Column(cols.part).(*array.Int32)
		n := int(rec.NumRows())
		for i := 0; i < n; {
			j := i + 1
			for j < n && j-i < d.batchSize && parts.Value(j) == parts.Value(i) && topics.Value(j) == topics.Value(i) {
				j++
			}
			lakeBatch(&b, rec, cols, i, j)
			d.labels, d.labelOK = d.labels[:0], d.labelOK[:0]
			for r := i; r < j; r++ {
				y, ok := lakeLabelOf(rec, cols, r)
				d.labels, d.labelOK = append(d.labels, y), append(d.labelOK, ok)
			}
			if err := d.process(ctx, d.lakePrep, &b, visit); err != nil {
				return err
			}
			i = j
		}
	}
	return nil
}

// lakeBatch resets b to rows [i, j) of rec (one source partition).
func lakeBatch(b *pipeline.Batch, rec arrow.RecordBatch, c lakeColumns, i, j int) {
	topics := rec.Column(c.topic).(*array.String)
	parts := rec.Column(c.part).(*array.Int32)
	offs := rec.Column(c.off).(*array.Int64)
	ts := rec.Column(c.evtTime).(*array.Timestamp)
	msgs := make([]pipeline.Message, j-i)
	for k := range msgs {
		r := i + k
		msgs[k] = pipeline.Message{Topic: topics.Value(r), Partition: parts.Value(r), Offset: offs.Value(r), Timestamp: ts.Value(r).ToTime(arrow.Microsecond).UTC()}
	}
	b.Reset(msgs)
	fields := make([]arrow.Field, len(c.fields))
	arrs := make([]arrow.Array, len(c.fields))
	for k, ci := range c.fields {
		fields[k] = rec.Schema().Field(ci)
		arrs[k] = array.NewSlice(rec.Column(ci), int64(i), int64(j))
	}
	b.Record = array.NewRecordBatch(arrow.NewSchema(fields, nil), arrs, int64(j-i))
	for _, a := range arrs {
		a.Release()
	}
}

// lakeLabelOf is row i's joined label, when the lake has one.
func lakeLabelOf(rec arrow.RecordBatch, c lakeColumns, i int) (float32, bool) {
	if c.label < 0 {
		return 0, false
	}
	col := rec.Column(c.label)
	if col.IsNull(i) {
		return 0, false
	}
	f, ok := col.(*array.Float32)
	if !ok {
		return 0, false
	}
	return f.Value(i), true
}

// replayMarker is DIR/_replay.json of a completed --to-lake run.
type replayMarker struct {
	Run      string `json:"run"`
	Model    string `json:"model"`
	Version  string `json:"version"`
	Inputs   int64  `json:"inputs"`
	Rows     int64  `json:"rows"`
	Finished string `json:"finished"`
}

const replayMarkerName = "_replay.json"

// errReplayDone says that --to-lake already holds this run's output.
var errReplayDone = errors.New("already complete")

// openLakeTarget checks dir and opens a Writer on dir.partial.
func openLakeTarget(dir, runID, timeField string) (*lake.Writer, string, error) {
	if data, err := os.ReadFile(filepath.Join(dir, replayMarkerName)); err == nil {
		var m replayMarker
		if json.Unmarshal(data, &m) == nil && m.Run == runID {
			return nil, "", errReplayDone
		}
		return nil, "", fmt.Errorf("--to-lake %s holds the output of another run (%s); choose a new directory", dir, m.Run)
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return nil, "", fmt.Errorf("--to-lake %s exists and is not empty; choose a new directory", dir)
	}
	partial := filepath.Clean(dir) + ".partial"
	if err := os.RemoveAll(partial); err != nil {
		return nil, "", fmt.Errorf("--to-lake: discard %s: %w", partial, err)
	}
	w, err := lake.New(lake.Config{Root: partial, TimeColumn: timeField, MaxAge: 1 << 62})
	if err != nil {
		return nil, "", fmt.Errorf("--to-lake %s: %w", dir, err)
	}
	return w, partial, nil
}

// finishLakeTarget closes w and publishes partial as dir.
func finishLakeTarget(w *lake.Writer, partial, dir string, m replayMarker) error {
	if err := w.Close(); err != nil {
		return fmt.Errorf("--to-lake %s: %w", dir, err)
	}
	data, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(partial, replayMarkerName), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("--to-lake %s: %w", dir, err)
	}
	_ = os.Remove(dir) // an empty directory may be there
	if err := os.Rename(partial, dir); err != nil {
		return fmt.Errorf("--to-lake %s: %w", dir, err)
	}
	return nil
}

// directTarget receives the scored batches of a direct replay.
type directTarget struct {
	score   *stages.Score
	model   *stages.ServedModel
	lake    *lake.Writer
	kafka   *kgo.Client
	topic   string
	outputs int64
}

func (t *directTarget) visit(ctx context.Context, b *pipeline.Batch) error {
	if err := t.score.Process(ctx, b); err != nil {
		return err
	}
	if t.lake != nil {
		if err := t.lake.WriteBatch(b, t.model.Version); err != nil {
			return fmt.Errorf("--to-lake: %w", err)
		}
	}
	if t.kafka != nil {
		recs := make([]*kgo.Record, 0, len(b.Outputs))
		for _, o := range b.Outputs {
			r := &kgo.Record{Topic: t.topic, Key: slices.Clone(o.Key), Value: slices.Clone(o.Value)}
			for _, h := range o.Headers {
				r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: slices.Clone(h.Value)})
			}
			recs = append(recs, r)
		}
		if err := t.kafka.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return fmt.Errorf("--to-topic %s: %w", t.topic, err)
		}
	}
	t.outputs += int64(len(b.Features.Row))
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
