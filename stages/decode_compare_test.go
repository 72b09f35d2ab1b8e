package stages

import (
	"context"
	stdjson "encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/bytedance/sonic"
	gojson "github.com/goccy/go-json"

	"github.com/driftline/driftline/pipeline"
)

// libEvent is the unit spec's schema as a Go struct, for the JSON libraries
// BenchmarkDecodeLibraries compares the decode stage with.
type libEvent struct {
	EventID string   `json:"event_id"`
	TS      string   `json:"ts"`
	UserID  *string  `json:"user_id"`
	Email   *string  `json:"email"`
	Phone   *string  `json:"phone"`
	Country *string  `json:"country"`
	Device  *string  `json:"device"`
	Channel *string  `json:"channel"`
	F0      *float64 `json:"f0"`
	F1      *float64 `json:"f1"`
	F2      *float64 `json:"f2"`
	F3      *float64 `json:"f3"`
	F4      *float64 `json:"f4"`
	F5      *float64 `json:"f5"`
	F6      *float64 `json:"f6"`
	F7      *float64 `json:"f7"`
	F8      *float64 `json:"f8"`
	F9      *float64 `json:"f9"`
	N       *int64   `json:"n"`
	Flag    *bool    `json:"flag"`
	Amount  *float64 `json:"amount"`
}

// libDecoder decodes a batch with a JSON library into libEvent values, then
// appends them to Arrow builders of the spec's schema and builds the
// record, as the decode stage does (minus its checks: string limits,
// required fields, the error detail per row, so it is the libraries' lower
// bound).
type libDecoder struct {
	unmarshal func([]byte, any) error
	bld       *array.RecordBuilder
	ev        libEvent
}

func newLibDecoder(spec *pipeline.Spec, unmarshal func([]byte, any) error) *libDecoder {
	return &libDecoder{unmarshal: unmarshal, bld: array.NewRecordBuilder(memory.DefaultAllocator, spec.ArrowSchema())}
}

func (d *libDecoder) decode(msgs []pipeline.Message) (arrow.RecordBatch, error) {
	fs := d.bld.Fields()
	for i := range msgs {
		d.ev = libEvent{}
		if err := d.unmarshal(msgs[i].Value, &d.ev); err != nil {
			return nil, err
		}
		e := &d.ev
		fs[0].(*array.StringBuilder).Append(e.EventID)
		ts, err := time.Parse(time.RFC3339Nano, e.TS)
		if err != nil {
			return nil, err
		}
		fs[1].(*array.TimestampBuilder).Append(arrow.Timestamp(ts.UnixMicro()))
		for k, s := range []*string{e.UserID, e.Email, e.Phone, e.Country, e.Device, e.Channel} {
			appendOptString(fs[2+k].(*array.StringBuilder), s)
		}
		for k, f := range []*float64{e.F0, e.F1, e.F2, e.F3, e.F4, e.F5, e.F6, e.F7, e.F8, e.F9} {
			appendOptFloat(fs[8+k].(*array.Float64Builder), f)
		}
		if e.N != nil {
			fs[18].(*array.Int64Builder).Append(*e.N)
		} else {
			fs[18].AppendNull()
		}
		if e.Flag != nil {
			fs[19].(*array.BooleanBuilder).Append(*e.Flag)
		} else {
			fs[19].AppendNull()
		}
		appendOptFloat(fs[20].(*array.Float64Builder), e.Amount)
	}
	return d.bld.NewRecordBatch(), nil
}

func appendOptString(b *array.StringBuilder, s *string) {
	if s == nil {
		b.AppendNull()
		return
	}
	b.Append(*s)
}

func appendOptFloat(b *array.Float64Builder, f *float64) {
	if f == nil {
		b.AppendNull()
		return
	}
	b.Append(*f)
}

// BenchmarkDecodeLibraries compares the decode stage (the scanner compiled
// from the schema, writing Arrow columns) with maintained JSON libraries
// decoding the same 1,024 events into Go values and appending those to
// Arrow builders of the same schema: goccy/go-json, bytedance/sonic and
// encoding/json for reference. One op is one batch; ns/event is the
// figure to compare.
func BenchmarkDecodeLibraries(b *testing.B) {
	spec := benchSpec(b)
	if len(spec.Schema.Fields) != 21 || spec.Schema.Fields[18].Name != "n" {
		b.Fatalf("libEvent no longer matches the unit spec's schema: %d fields", len(spec.Schema.Fields))
	}
	msgs := benchMessages(benchRows(b))
	// sonic compiles its decoder for a type on first use: not in the timing.
	must(b, sonic.Pretouch(reflect.TypeFor[libEvent]()))
	b.Run("decoder=driftline", func(b *testing.B) {
		d := NewDecode(spec)
		var batch pipeline.Batch
		perEvent(b, func() {
			batch.Reset(msgs)
			must(b, d.Process(context.Background(), &batch))
		})
	})
	libs := []struct {
		name      string
		unmarshal func([]byte, any) error
	}{
		{"goccy", gojson.Unmarshal},
		{"sonic", sonic.Unmarshal},
		{"sonic-fastest", sonic.ConfigFastest.Unmarshal},
		{"encoding-json", stdjson.Unmarshal},
	}
	for _, lib := range libs {
		b.Run("decoder="+lib.name, func(b *testing.B) {
			d := newLibDecoder(spec, lib.unmarshal)
			var rec arrow.RecordBatch
			perEvent(b, func() {
				var err error
				rec, err = d.decode(msgs)
				must(b, err)
				rec.Release()
			})
		})
	}
}

// TestLibDecoderAgrees checks that BenchmarkDecodeLibraries' library path
// builds the same columns as the decode stage on the benchmark's events,
// so that the comparison is of equal work.
func TestLibDecoderAgrees(t *testing.T) {
	spec := benchSpec(t)
	_, rows := genEvents(t, 42, 64, 100)
	rows[5] = row(map[string]string{"email": "null", "n": "42", "flag": "true", "amount": "-2.5"})
	msgs := benchMessages(rows)
	var batch pipeline.Batch
	batch.Reset(msgs)
	mustProcess(t, &batch, NewDecode(spec))
	for _, lib := range []struct {
		name      string
		unmarshal func([]byte, any) error
	}{{"goccy", gojson.Unmarshal}, {"sonic", sonic.Unmarshal}} {
		rec, err := newLibDecoder(spec, lib.unmarshal).decode(msgs)
		if err != nil {
			t.Fatalf("%s: %v", lib.name, err)
		}
		for c := range spec.Schema.Fields {
			if !array.Equal(rec.Column(c), batch.Record.Column(c)) {
				t.Errorf("%s: column %s differs from the decode stage's:\n%v\n%v", lib.name, spec.Schema.Fields[c].Name, rec.Column(c), batch.Record.Column(c))
			}
		}
		rec.Release()
	}
}
