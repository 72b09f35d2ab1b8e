package app

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/driftline/driftline/connectors/redis"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
)

// PreparedRow is one input line after decode, validate, dedupe, the
// free-text stages, anonymize and featurize: its output fields and
// features, or why it would go to the DLQ, or that it is a duplicate.
type PreparedRow struct {
	Line int `json:"line"`
	// Fields are the row's values after anonymization (absent fields are
	// left out), for an accepted row.
	Fields map[string]any `json:"fields,omitempty"`
	// Dense and Hashed are its features by name (NaN is null).
	Dense  map[string]*float64 `json:"dense,omitempty"`
	Hashed map[string]int32    `json:"hashed,omitempty"`
	// DLQ is the rejection of a row that would go to the DLQ.
	DLQ *pipeline.Rejection `json:"dlq,omitempty"`
	// Duplicate is set for a row dropped as a repeated event id.
	Duplicate bool `json:"duplicate,omitempty"`
}

// String is the row as `driftline prepare` prints it without --json.
func (r PreparedRow) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "line %d: ", r.Line)
	switch {
	case r.DLQ != nil:
		fmt.Fprintf(&b, "DLQ stage=%s reason=%s", r.DLQ.Stage, r.DLQ.Reason)
		if r.DLQ.Detail != "" {
			fmt.Fprintf(&b, " detail=%q", r.DLQ.Detail)
		}
	case r.Duplicate:
		b.WriteString("duplicate (dropped)")
	default:
		b.WriteString("ok")
		for _, k := range sortedKeys(r.Fields) {
			fmt.Fprintf(&b, " %s=%v", k, r.Fields[k])
		}
		for _, k := range sortedKeys(r.Dense) {
			if v := r.Dense[k]; v != nil {
				fmt.Fprintf(&b, " %s=%g", k, *v)
			} else {
				fmt.Fprintf(&b, " %s=NaN", k)
			}
		}
		for _, k := range sortedKeys(r.Hashed) {
			fmt.Fprintf(&b, " %s=#%d", k, r.Hashed[k])
		}
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// PrepareStats sums up a Prepare run.
type PrepareStats struct {
	Rows       int            `json:"rows"`
	OK         int            `json:"ok"`
	DLQ        int            `json:"dlq"`
	Duplicates int            `json:"duplicates"`
	Reasons    map[string]int `json:"dlq_reasons"`
	// TextPII counts the free-text PII findings, "field/type": count.
	TextPII map[string]int `json:"text_pii"`
	// EphemeralKeys names the key variables that were unset and so got a
	// random key for this run (pseudonyms then differ from production's).
	EphemeralKeys []string `json:"ephemeral_keys,omitempty"`
}

// String is the summary `driftline prepare --stats` prints without --json.
func (s PrepareStats) String() string {
	return fmt.Sprintf("stats: %d rows, %d ok, %d to the DLQ %v, %d duplicates, text PII findings %v, ephemeral keys %v",
		s.Rows, s.OK, s.DLQ, s.Reasons, s.Duplicates, s.TextPII, s.EphemeralKeys)
}

// Prepare runs spec's preparation chain — decode, validate, dedupe, the
// free-text stages, anonymize and featurize, the code path of `driftline
// run` — over in, one JSON event per line, in batches of batch.size, and
// calls emit with each line's result in order. Stateful stages (dedupe,
// entity aggregates) keep their state in an in-process Redis (miniredis)
// for the run. Key variables the spec names but the environment lacks get
// a random key for the run, listed in the stats. Nothing is read from or
// written to Kafka.
func Prepare(ctx context.Context, spec *pipeline.Spec, in io.Reader, emit func(PreparedRow) error) (PrepareStats, error) {
	st := PrepareStats{Reasons: map[string]int{}, TextPII: map[string]int{}}
	var err error
	if st.EphemeralKeys, err = EphemeralKeys(&spec.Stages.Anonymize); err != nil {
		return st, err
	}
	mr, err := miniredis.Run()
	if err != nil {
		return st, fmt.Errorf("start the in-process redis: %w", err)
	}
	defer mr.Close()
	local := *spec
	local.Redis = pipeline.RedisSpec{Addr: mr.Addr(), KeyPrefix: spec.Redis.KeyPrefix}
	rc, err := RedisClient(&local)
	if err != nil {
		return st, err
	}
	rdb, err := redis.New(rc)
	if err != nil {
		return st, err
	}
	defer rdb.Close()
	keys, err := stages.LoadKeys(&spec.Stages.Anonymize)
	if err != nil {
		return st, fmt.Errorf("stages.anonymize: %w", err)
	}
	reg := prometheus.NewRegistry()
	opts := stages.ChainOptions{}
	if spec.HasTextPII() {
		if opts.TextPIIMetrics, err = stages.NewTextPIIMetrics(reg); err != nil {
			return st, err
		}
	}
	if spec.Stages.Text.Model != nil {
		if opts.TextModel, err = stages.OpenTextModel(spec); err != nil {
			return st, err
		}
		defer opts.TextModel.Close()
	}
	chain, err := stages.PreparationChainWith(spec, rdb, keys, opts)
	if err != nil {
		return st, err
	}
	dense, hashed := stages.FeatureNames(spec)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var msgs []pipeline.Message
	line := 0
	flush := func() error {
		if len(msgs) == 0 {
			return nil
		}
		err := prepareBatch(ctx, spec, chain, msgs, dense, hashed, &st, emit)
		msgs = msgs[:0]
		return err
	}
	for sc.Scan() {
		line++
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		msgs = append(msgs, pipeline.Message{Topic: spec.Topics.Input, Offset: int64(line), Value: append([]byte(nil), sc.Bytes()...), Timestamp: time.Now()})
		if len(msgs) == spec.Batch.Size {
			if err := flush(); err != nil {
				return st, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return st, fmt.Errorf("read input: %w", err)
	}
	if err := flush(); err != nil {
		return st, err
	}
	if opts.TextPIIMetrics != nil {
		mfs, err := reg.Gather()
		if err != nil {
			return st, err
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				st.TextPII[labelValue(m, "field")+"/"+labelValue(m, "type")] = int(m.GetCounter().GetValue())
			}
		}
	}
	return st, nil
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// EphemeralKeys sets a random key in each key variable the anonymize
// block names that the environment lacks (the demo, prepare), and returns
// their names.
func EphemeralKeys(an *pipeline.AnonymizeSpec) ([]string, error) {
	var set []string
	for _, env := range []string{an.HMACKeyEnv, an.EncryptionKeyEnv} {
		if env == "" || os.Getenv(env) != "" {
			continue
		}
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if err := os.Setenv(env, hex.EncodeToString(key)); err != nil {
			return nil, err
		}
		set = append(set, env)
	}
	return set, nil
}

func prepareBatch(ctx context.Context, spec *pipeline.Spec, chain []pipeline.Stage, msgs []pipeline.Message,
	dense, hashed []string, st *PrepareStats, emit func(PreparedRow) error) error {
	b := &pipeline.Batch{}
	b.Reset(msgs)
	defer b.Reset(nil)
	for _, s := range chain {
		if err := s.Process(ctx, b); err != nil {
			return fmt.Errorf("%s: %w", s.Name(), err)
		}
	}
	feature := map[int]int{}
	for j, i := range b.Features.Row {
		feature[i] = j
	}
	fb := &b.Features
	for i := range msgs {
		st.Rows++
		row := PreparedRow{Line: int(msgs[i].Offset)}
		switch b.State[i] {
		case pipeline.RowRejected:
			st.DLQ++
			st.Reasons[b.Rejections[i].Reason]++
			rej := b.Rejections[i]
			row.DLQ = &rej
		case pipeline.RowDuplicate:
			st.Duplicates++
			row.Duplicate = true
		default:
			st.OK++
			row.Fields = map[string]any{}
			for c, f := range spec.Schema.Fields {
				if v, ok := columnValue(b.Record.Column(c), i); ok {
					row.Fields[f.Name] = v
				}
			}
			if j, ok := feature[i]; ok {
				row.Dense, row.Hashed = map[string]*float64{}, map[string]int32{}
				for k, name := range dense {
					if x := float64(fb.Dense[j*fb.NumDense+k]); !math.IsNaN(x) {
						row.Dense[name] = &x
					} else {
						row.Dense[name] = nil
					}
				}
				for k, name := range hashed {
					row.Hashed[name] = fb.Hashed[j*fb.NumHashed+k]
				}
			}
		}
		if err := emit(row); err != nil {
			return err
		}
	}
	return nil
}

// columnValue is row i of col as a JSON-ready value; false when null.
func columnValue(col arrow.Array, i int) (any, bool) {
	if col.IsNull(i) {
		return nil, false
	}
	switch a := col.(type) {
	case *array.String:
		return a.Value(i), true
	case *array.Float64:
		if x := a.Value(i); !math.IsNaN(x) && !math.IsInf(x, 0) {
			return x, true
		}
		return nil, false
	case *array.Int64:
		return a.Value(i), true
	case *array.Boolean:
		return a.Value(i), true
	case *array.Timestamp:
		return a.Value(i).ToTime(arrow.Microsecond).UTC().Format(time.RFC3339Nano), true
	}
	return nil, false
}
