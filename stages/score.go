package stages

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/pipeline"
)

// Rollout arms a prediction can come from.
const (
	ArmChampion = "champion"
	ArmCanary   = "canary"
	ArmShadow   = "shadow"
)

// ServedModel is one model version serving one rollout arm. It is safe for
// concurrent use: the partition loops' Predict calls and the label join's
// Learn calls are serialized by its mutex, and so is Swap (served_state.go),
// which replaces the learner with a published state between two calls.
type ServedModel struct {
	Name    string
	Version string
	Arm     string
	mu      sync.Mutex
	model   models.Learner
	// mark says which published learner state model holds, and counts
	// the labels it learned (see StateMark).
	mark StateMark
	// outputs holds a multi-output learner's K outputs per row (Predict).
	outputs []float32
}

// NewServedModel wraps a model for serving.
func NewServedModel(name, version, arm string, m models.Learner) *ServedModel {
	return &ServedModel{Name: name, Version: version, Arm: arm, model: m}
}

// Predict writes the served score of each row into dst, which must hold
// exactly rows.N values: the learner's one output, or, for a learner of
// K ≥ 2 outputs, models.ServedScore of them (P(y=1) for K = 2, the
// predicted class index for K > 2). It wraps models.ErrShape when the
// shapes do not match.
func (s *ServedModel) Predict(dst []float32, rows *models.Rows) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.model.Classes()
	if k <= 1 {
		return s.model.Predict(dst, rows)
	}
	if len(dst) != rows.N {
		return fmt.Errorf("%w: %d served scores for %d rows", models.ErrShape, len(dst), rows.N)
	}
	if cap(s.outputs) < rows.N*k {
		s.outputs = make([]float32, rows.N*k)
	}
	out := s.outputs[:rows.N*k]
	if err := s.model.Predict(out, rows); err != nil {
		return err
	}
	for i := range dst {
		dst[i] = models.ServedScore(out[i*k : (i+1)*k])
	}
	return nil
}

// Learn updates the model on labelled rows (see models.Learner.Learn).
func (s *ServedModel) Learn(rows *models.Rows, y []float32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.model.Learn(rows, y)
	if err == nil || errors.Is(err, models.ErrInvalidLabel) {
		s.mark.Learned += int64(rows.N)
	}
	return err
}

// Warm reports whether the model has learned from any labelled row (see
// models.IsWarm); predictions carry it as "warm".
func (s *ServedModel) Warm() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return models.IsWarm(s.model)
}

// Snapshot returns a copy of the model, for export or checkpoints.
func (s *ServedModel) Snapshot() models.Learner {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.model.Clone()
}

// DecisionOf is the spec's decision rule: model.threshold (models.Threshold
// when it is not set) and model.classes. A prediction's class is the
// Decision's Class of its served score (ServedModel.Predict).
func DecisionOf(spec *pipeline.Spec) models.Decision {
	d := models.Decision{Threshold: models.Threshold, Classes: modelClasses(spec)}
	if t := spec.Model.Threshold; t != nil {
		d.Threshold = *t
	}
	return d
}

// Score runs the champion on each batch's features and writes one
// prediction per live row to the predictions topic, keyed by event id:
//
//	{"event_id":"…","score":0.73,"class":1,"warm":true,"model":"…",
//	 "version":"…","arm":"champion","partition":0,"offset":42,
//	 <passthrough fields>}
//
// score is the served score (ServedModel.Predict) and class the class it
// stands for (DecisionOf): for a binary model 1 when the score P(y=1) is
// above model.threshold, 0 otherwise (a tie is 0); for a multi-class model
// (model.classes > 2) the score is the predicted class's index, and so is
// class. A regression's score is its value. warm is false while
// the model that scored the row has learned nothing (its score is its
// untrained default), true once it has learned from a label.
//
// Passthrough fields are copied after anonymization; when one of them is
// encrypted, the record carries the driftline.key_id header. After scoring,
// Observe (when set) sees the batch, e.g. to cache features for the label
// join. A Score is used by one partition loop at a time.
type Score struct {
	model       *ServedModel
	topic       string
	idCol       int
	passthrough []int
	decision    models.Decision
	keyHeader   []pipeline.Header
	rows        models.Rows
	// buf is the batch's key and value bytes while scoreArms writes them;
	// bufCap is the size of the previous batch's, to size the next one.
	buf     []byte
	bufCap  int
	rowEnds []int // key and value ends in the batch's buffer, per record
	frags   predictionFragments
	// passthroughKeys are `,"<name>":` per passthrough field.
	passthroughKeys [][]byte
	// plainPassthrough says, per passthrough field, that its values never
	// need escaping in JSON (they are copied between quotes unchecked).
	plainPassthrough []bool
	// arms, when set (NewScoreWithArms), replaces model: see scoreArms.
	arms        *Arms
	shadowTopic string
	keyCol      int
	served      []*ServedModel
	versions    []string
	armNames    []string // the arm of each row's model
	percent     int      // the canary share of the batch
	ends        [][3]int
	// Observe, when set, is called with each scored batch.
	Observe func(ctx context.Context, b *pipeline.Batch) error
}

// NewScore builds the stage for the champion model.
func NewScore(spec *pipeline.Spec, champion *ServedModel, keyID string) *Score {
	s := &Score{model: champion, topic: spec.Topics.Predictions, idCol: spec.FieldIndex(spec.Schema.IDField), decision: DecisionOf(spec)}
	encrypted := map[string]bool{}
	// plain: fields whose every value anonymize writes in a JSON-safe
	// alphabet (pseudonyms are "tok_" and hex, ciphertexts base64, redacted
	// values RedactedValue) and that no later stage rewrites.
	plain := map[string]bool{}
	for _, f := range spec.Stages.Anonymize.Fields {
		switch f.Op {
		case pipeline.OpEncrypt:
			encrypted[f.Field] = true
			plain[f.Field] = true
		case pipeline.OpPseudonymize, pipeline.OpRedact:
			plain[f.Field] = true
		}
	}
	for _, f := range spec.Stages.Text.PII {
		delete(plain, f.Field)
		if f.Action == pipeline.OpEncrypt {
			encrypted[f.Field] = true
		}
	}
	for _, n := range spec.Output.Passthrough {
		s.passthrough = append(s.passthrough, spec.FieldIndex(n))
		s.plainPassthrough = append(s.plainPassthrough, plain[n])
		s.passthroughKeys = append(s.passthroughKeys, append(pipeline.AppendJSONString([]byte{','}, n), ':'))
		if encrypted[n] && s.keyHeader == nil {
			s.keyHeader = []pipeline.Header{{Key: pipeline.HeaderKeyID, Value: []byte(keyID)}}
		}
	}
	return s
}

// Name implements pipeline.Stage.
func (s *Score) Name() string { return "score" }

// Process implements pipeline.Stage.
func (s *Score) Process(ctx context.Context, b *pipeline.Batch) error {
	fb := &b.Features
	n := fb.Len()
	if n == 0 {
		return nil
	}
	s.rows = FeatureRows(fb)
	if cap(b.Scores) < n {
		b.Scores = make([]float32, n)
	}
	b.Scores = b.Scores[:n]
	if s.arms != nil {
		return s.scoreArms(ctx, b)
	}
	if err := s.model.Predict(b.Scores, &s.rows); err != nil {
		return fmt.Errorf("score: %w", err)
	}
	// One buffer holds every key and value of the batch; records slice
	// into it. It comes from the batch's Pool and is held until the batch
	// is acknowledged (pipeline.Batch.Hold): a pending batch's records
	// still point into theirs. Without a Pool it is fresh.
	// buf is local while it grows: a field would take a GC write barrier
	// per append.
	buf := b.Pool.Get(s.bufCap)[:0]
	ends := s.rowEnds[:0]
	s.frags.reset()
	frag := s.frags.of(s.model)
	for j, i := range fb.Row {
		buf = appendEventID(buf, b, s.idCol, i)
		ends = append(ends, len(buf))
		buf = s.appendPrediction(buf, frag, b, i, b.Scores[j])
		ends = append(ends, len(buf))
	}
	s.bufCap, s.rowEnds = cap(buf), ends
	b.Hold(buf)
	start := 0
	for j, i := range fb.Row {
		keyEnd, valEnd := ends[2*j], ends[2*j+1]
		b.AppendOutput(i, pipeline.OutRecord{
			Topic:   s.topic,
			Key:     buf[start:keyEnd:keyEnd],
			Value:   buf[keyEnd:valEnd:valEnd],
			Headers: s.keyHeader,
		})
		start = valEnd
	}
	if s.Observe != nil {
		return s.Observe(ctx, b)
	}
	return nil
}

// FeatureRows views a feature block as model rows.
func FeatureRows(fb *pipeline.FeatureBlock) models.Rows {
	return models.Rows{N: fb.Len(), NumDense: fb.NumDense, NumHashed: fb.NumHashed, Dense: fb.Dense, Hashed: fb.Hashed}
}

// appendPrediction appends row i's prediction; frag is the scoring model's
// fragment for the batch (predictionFragments).
func (s *Score) appendPrediction(dst, frag []byte, b *pipeline.Batch, i int, score float32) []byte {
	m := &b.Messages[i]
	dst = append(dst, `{"event_id":`...)
	dst = appendJSONValue(dst, b.Record.Column(s.idCol), i)
	dst = append(dst, `,"score":`...)
	if math.IsNaN(float64(score)) {
		dst = append(dst, "null"...)
	} else {
		dst = strconv.AppendFloat(dst, float64(score), 'g', -1, 32)
	}
	dst = append(dst, `,"class":`...)
	dst = strconv.AppendInt(dst, int64(s.decision.Class(float64(score))), 10)
	dst = append(dst, frag...)
	dst = strconv.AppendInt(dst, int64(m.Partition), 10)
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendInt(dst, m.Offset, 10)
	for k, c := range s.passthrough {
		dst = append(dst, s.passthroughKeys[k]...)
		col := b.Record.Column(c)
		if a, ok := col.(*array.String); ok && s.plainPassthrough[k] && a.IsValid(i) {
			dst = append(dst, '"')
			dst = append(dst, a.Value(i)...)
			dst = append(dst, '"')
			continue
		}
		dst = appendJSONValue(dst, col, i)
	}
	return append(dst, '}')
}

// predictionFragments holds, for one batch, what every prediction of one
// model has in common: `,"warm":…,"model":…,"version":…,"arm":…,
// "partition":`, written once per model and batch instead of once per row
// (the model's warmth is read once per batch, as before).
type predictionFragments struct {
	models []*ServedModel
	frags  [][]byte
}

// reset forgets the previous batch's fragments, keeping their memory.
func (p *predictionFragments) reset() { p.models = p.models[:0] }

// of returns m's fragment, writing it on m's first call since reset.
func (p *predictionFragments) of(m *ServedModel) []byte {
	for k, have := range p.models {
		if have == m {
			return p.frags[k]
		}
	}
	k := len(p.models)
	p.models = append(p.models, m)
	if k == len(p.frags) {
		p.frags = append(p.frags, nil)
	}
	f := append(p.frags[k][:0], `,"warm":`...)
	f = strconv.AppendBool(f, m.Warm())
	f = append(f, `,"model":`...)
	f = pipeline.AppendJSONString(f, m.Name)
	f = append(f, `,"version":`...)
	f = pipeline.AppendJSONString(f, m.Version)
	f = append(f, `,"arm":`...)
	f = pipeline.AppendJSONString(f, m.Arm)
	f = append(f, `,"partition":`...)
	p.frags[k] = f
	return f
}

// appendJSONValue appends row i of col as a JSON value (null when null).
func appendJSONValue(dst []byte, col arrow.Array, i int) []byte {
	if col.IsNull(i) {
		return append(dst, "null"...)
	}
	switch a := col.(type) {
	case *array.String:
		return appendJSONString(dst, a.Value(i))
	case *array.Float64:
		return appendJSONFloat(dst, a.Value(i))
	case *array.Int64:
		return strconv.AppendInt(dst, a.Value(i), 10)
	case *array.Boolean:
		return strconv.AppendBool(dst, a.Value(i))
	case *array.Timestamp:
		return pipeline.AppendJSONString(dst, a.Value(i).ToTime(arrow.Microsecond).Format("2006-01-02T15:04:05.999999Z07:00"))
	}
	return append(dst, "null"...)
}

// appendJSONFloat appends x as a JSON number, or null for NaN and ±Inf.
func appendJSONFloat(dst []byte, x float64) []byte {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return append(dst, "null"...)
	}
	return strconv.AppendFloat(dst, x, 'g', -1, 64)
}
