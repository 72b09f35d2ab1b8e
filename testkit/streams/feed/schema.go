package feed

import (
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"time"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/streams"
)

// Encoder writes a stream's events and labels as a pipeline reads them.
// The zero Config.Encoder writes the synthetic stream's own JSON
// (streams.AppendJSON and AppendLabelJSON, keyed by user id).
type Encoder interface {
	// AppendEvent appends e as one JSON object.
	AppendEvent(dst []byte, e *streams.Event) []byte
	// AppendLabel appends e's label record.
	AppendLabel(dst []byte, e *streams.Event) []byte
	// Key is e's record key (its entity, so that one partition sees it).
	Key(e *streams.Event) []byte
}

type streamEncoder struct{}

func (streamEncoder) AppendEvent(dst []byte, e *streams.Event) []byte {
	return streams.AppendJSON(dst, e)
}
func (streamEncoder) AppendLabel(dst []byte, e *streams.Event) []byte {
	return streams.AppendLabelJSON(dst, e)
}
func (streamEncoder) Key(e *streams.Event) []byte { return []byte(e.UserID) }

// SchemaEncoder writes a stream's events in a pipeline spec's schema, so
// that `driftline produce --spec FILE` feeds any spec: the id and time
// fields carry the event's id and time; the spec's numeric features
// (stages.featurize.numeric, in order) carry the stream's attributes
// F[0], F[1], … scaled linearly from the concept's range into the field's
// [min, max] (rounded for an int, above the middle for a bool), so the
// label, the concept's function of those attributes, stays learnable and
// drifts with the stream; an enum field takes a value picked by the
// event's categorical draws, independent of the label; a PII field a
// value of its class derived from the event's user; any other field a
// plausible value of its type. Labels are {id_field: id, labels.field:
// 0|1}; the key is the entity field's value (the user).
type SchemaEncoder struct {
	fields  []schemaField
	idField string
	label   string
	concept string
}

type schemaField struct {
	pipeline.FieldSpec
	role    fieldRole
	feature int // the stream attribute of a numeric feature
}

type fieldRole int

const (
	roleOther fieldRole = iota
	roleID
	roleTime
	roleFeature
	roleEntity
)

// NewSchemaEncoder builds the encoder of spec's schema for a stream of
// concept (streams.Concept*). It fails when the spec has more numeric
// features than the stream has attributes (10).
func NewSchemaEncoder(spec *pipeline.Spec, concept string) (*SchemaEncoder, error) {
	enc := &SchemaEncoder{idField: spec.Schema.IDField, label: spec.Labels.Field, concept: concept}
	numeric := map[string]int{}
	for i, n := range spec.Stages.Featurize.Numeric {
		if i >= len(streams.Event{}.F) {
			return nil, fmt.Errorf("the spec has %d numeric features; the stream has %d attributes", len(spec.Stages.Featurize.Numeric), len(streams.Event{}.F))
		}
		numeric[n] = i
	}
	entity := ""
	if e := spec.Stages.Featurize.Entity; e != nil {
		entity = e.Field
	}
	for _, f := range spec.Schema.Fields {
		sf := schemaField{FieldSpec: f}
		switch k, isNum := numeric[f.Name]; {
		case f.Name == spec.Schema.IDField:
			sf.role = roleID
		case f.Name == spec.Schema.TimeField:
			sf.role = roleTime
		case isNum:
			sf.role, sf.feature = roleFeature, k
		case f.Name == entity:
			sf.role = roleEntity
		}
		enc.fields = append(enc.fields, sf)
	}
	return enc, nil
}

// AppendEvent implements Encoder.
func (s *SchemaEncoder) AppendEvent(dst []byte, e *streams.Event) []byte {
	dst = append(dst, '{')
	for i, f := range s.fields {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = pipeline.AppendJSONString(dst, f.Name)
		dst = append(dst, ':')
		dst = s.appendValue(dst, &f, e)
	}
	return append(dst, '}')
}

// AppendLabel implements Encoder.
func (s *SchemaEncoder) AppendLabel(dst []byte, e *streams.Event) []byte {
	dst = append(dst, '{')
	dst = pipeline.AppendJSONString(dst, s.idField)
	dst = append(dst, ':')
	dst = pipeline.AppendJSONString(dst, e.ID)
	dst = append(dst, ',')
	dst = pipeline.AppendJSONString(dst, s.label)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, int64(e.Label), 10)
	return append(dst, '}')
}

// Key implements Encoder.
func (s *SchemaEncoder) Key(e *streams.Event) []byte { return []byte(e.UserID) }

func (s *SchemaEncoder) appendValue(dst []byte, f *schemaField, e *streams.Event) []byte {
	switch f.role {
	case roleID:
		return pipeline.AppendJSONString(dst, e.ID)
	case roleTime:
		if f.Type == pipeline.TypeTimestamp || f.Type == pipeline.TypeString {
			return pipeline.AppendJSONString(dst, e.Time.UTC().Format(time.RFC3339Nano))
		}
		return strconv.AppendInt(dst, e.Time.UnixMilli(), 10)
	case roleFeature:
		lo, hi := streams.AttributeRange(s.concept, f.feature)
		return appendScaled(dst, &f.FieldSpec, (e.F[f.feature]-lo)/(hi-lo))
	case roleEntity:
		if f.Type == pipeline.TypeString {
			return pipeline.AppendJSONString(dst, e.UserID)
		}
	}
	pick := pickOf(e.UserID + "/" + e.Country + "/" + e.Device + "/" + e.Channel + "/" + f.Name)
	switch {
	case len(f.Enum) > 0:
		return pipeline.AppendJSONString(dst, f.Enum[pick%uint64(len(f.Enum))])
	case f.Type == pipeline.TypeString:
		return pipeline.AppendJSONString(dst, piiValue(f.PII, e, f.Name, pick))
	case f.Type == pipeline.TypeTimestamp:
		return pipeline.AppendJSONString(dst, e.Time.UTC().Format(time.RFC3339Nano))
	}
	return appendScaled(dst, &f.FieldSpec, float64(pick%1000)/1000)
}

// appendScaled writes u, in [0, 1], scaled into f's range, as f's type.
func appendScaled(dst []byte, f *pipeline.FieldSpec, u float64) []byte {
	u = min(max(u, 0), 1)
	lo, hi := 0.0, 100.0
	if f.Min != nil {
		lo = *f.Min
		if f.Max == nil {
			hi = lo + 100
		}
	}
	if f.Max != nil {
		hi = *f.Max
		if f.Min == nil {
			lo = hi - 100
		}
	}
	v := lo + u*(hi-lo)
	switch f.Type {
	case pipeline.TypeBool:
		return strconv.AppendBool(dst, u >= 0.5)
	case pipeline.TypeInt:
		return strconv.AppendInt(dst, int64(math.Round(v)), 10)
	}
	return strconv.AppendFloat(dst, v, 'g', 8, 64)
}

// piiValue is a synthetic value of a PII class, derived from the event's user.
func piiValue(class pipeline.PIIClass, e *streams.Event, field string, pick uint64) string {
	n := pickOf(e.UserID)
	switch class {
	case "identifier":
		return e.UserID
	case "email":
		return e.Email
	case "phone":
		return e.Phone
	case "card_number":
		return fmt.Sprintf("4000%012d", n%1_000_000_000_000)
	case "name":
		return fmt.Sprintf("Customer %d", n%100_000)
	case "network":
		return fmt.Sprintf("10.%d.%d.%d", n%256, n/256%256, n/65536%254+1)
	}
	return fmt.Sprintf("%s-%d", field, pick%1000)
}

func pickOf(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}
