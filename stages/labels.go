package stages

import (
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/pipeline"
)

// StageLabels names the label plane in DLQ records (driftline.stage).
const StageLabels = "labels"

// Reasons a label record is refused (bounded metric labels and DLQ reason
// codes). Details name the field, never its value.
const (
	// ReasonLabelSyntax: not a flat JSON object.
	ReasonLabelSyntax = "labels.syntax"
	// ReasonLabelMissing: the id or the label field is absent, null or of
	// the wrong type.
	ReasonLabelMissing = "labels.missing_field"
	// ReasonLabelIDTooLong: the id is empty or over labels.max_id_bytes.
	ReasonLabelIDTooLong = "labels.id_too_long"
	// ReasonLabelInvalid: a label the served model can't learn (not 0 or 1
	// for a binary model, not a class index, not finite).
	ReasonLabelInvalid = "labels.invalid"
	// ReasonLabelOutOfRange: a regression label outside labels.min/max.
	ReasonLabelOutOfRange = "labels.out_of_range"
	// ReasonLabelParkedFull: the label arrived before its prediction while
	// labels.max_parked labels were parked already.
	ReasonLabelParkedFull = "labels.parked_full"
	// ReasonLabelDuplicate: another label of the same event is parked, or
	// took its prediction in the same batch (in log mode: joined it). The
	// first label is kept; the duplicate counts in
	// driftline_labels_invalid_total.
	ReasonLabelDuplicate = "labels.duplicate"
)

// LabelDecoder reads label records ({"<id field>": "…" or a number,
// "<label field>": a number}, other keys ignored) and checks each label
// against the served model: a binary model (kind logistic) learns 0 and 1,
// a softmax model the class indexes 0..classes-1, a regression (kind
// linear, or a model.onnx) any finite value within labels.min and
// labels.max when they are set — models.ValidLabel is the rule, applied to
// the label as the model will see it, a float32. The id must be 1 to
// labels.max_id_bytes bytes. A LabelDecoder is used by one goroutine.
type LabelDecoder struct {
	idField, labelField string
	maxID               int
	link                models.Link
	classes             int
	min, max            float64
	// buf holds unescaped strings, id the id being read.
	buf, id []byte
}

// NewLabelDecoder builds the decoder for a spec's schema, labels and
// model blocks.
func NewLabelDecoder(spec *pipeline.Spec) *LabelDecoder {
	d := &LabelDecoder{idField: spec.Schema.IDField, labelField: spec.Labels.Field, maxID: spec.Labels.MaxIDBytes,
		link: models.LinkIdentity, classes: 1, min: math.Inf(-1), max: math.Inf(1)}
	if d.maxID <= 0 {
		d.maxID = pipeline.DefaultLabelMaxIDBytes
	}
	switch {
	case spec.Model.ONNX != nil:
	case spec.Model.Kind == "logistic":
		d.link = models.LinkSigmoid
	case spec.Model.Kind == "softmax":
		d.link, d.classes = models.LinkSoftmax, modelClasses(spec)
	}
	if spec.Labels.Min != nil {
		d.min = *spec.Labels.Min
	}
	if spec.Labels.Max != nil {
		d.max = *spec.Labels.Max
	}
	return d
}

// Decode reads one label record. It returns the event id and the label,
// or a rejection (Stage StageLabels, a Reason above, a Detail naming the
// field but never its value) when the record is refused.
func (d *LabelDecoder) Decode(data []byte) (id string, label float32, rej pipeline.Rejection) {
	refuse := func(reason, detail string) (string, float32, pipeline.Rejection) {
		return "", 0, pipeline.Rejection{Stage: StageLabels, Reason: reason, Detail: detail}
	}
	if !utf8.Valid(data) {
		// An event id is valid UTF-8 (Decode checks it): this record's
		// can't be one.
		return refuse(ReasonLabelSyntax, "the record is not valid UTF-8")
	}
	p := scanner{data: data}
	p.skipSpace()
	if !p.consume('{') {
		return refuse(ReasonLabelSyntax, "the record is not a JSON object")
	}
	var (
		idNum, v            float64
		haveID, haveLabel   bool
		idIsNum, labelBad   bool
		idWrong, labelWrong bool
	)
	d.id = d.id[:0]
	p.skipSpace()
	if p.consume('}') {
		return refuse(ReasonLabelMissing, "fields "+d.idField+" and "+d.labelField+" are required")
	}
	for {
		p.skipSpace()
		d.buf = d.buf[:0]
		key, ok := p.readString(&d.buf)
		if !ok {
			return refuse(ReasonLabelSyntax, "malformed object key at byte "+strconv.Itoa(p.pos))
		}
		isID, isLabel := string(key) == d.idField, string(key) == d.labelField
		p.skipSpace()
		if !p.consume(':') {
			return refuse(ReasonLabelSyntax, "missing ':' at byte "+strconv.Itoa(p.pos))
		}
		p.skipSpace()
		c := p.peek()
		switch {
		case isID && c == '"':
			s, ok := p.readString(&d.buf)
			if !ok {
				return refuse(ReasonLabelSyntax, "field "+d.idField+": malformed string")
			}
			d.id, haveID, idIsNum, idWrong = append(d.id[:0], s...), true, false, false
		case (isID || isLabel) && (c == '-' || (c >= '0' && c <= '9')):
			num, ok := p.readNumber()
			if !ok {
				return refuse(ReasonLabelSyntax, "malformed number at byte "+strconv.Itoa(p.pos))
			}
			x, bad := parseFloat(num)
			if isID {
				idNum, haveID, idIsNum, idWrong = x, !bad, true, bad
			} else {
				v, haveLabel, labelBad, labelWrong = x, true, bad, false
			}
		default:
			if r := p.skipValue(0); r != "" {
				return refuse(ReasonLabelSyntax, "malformed value at byte "+strconv.Itoa(p.pos))
			}
			// null, or a value of the wrong type, for the id or the label
			if isID {
				haveID, idWrong = false, true
			}
			if isLabel {
				haveLabel, labelWrong = false, true
			}
		}
		p.skipSpace()
		if p.consume(',') {
			continue
		}
		if !p.consume('}') {
			return refuse(ReasonLabelSyntax, "expected ',' or '}' at byte "+strconv.Itoa(p.pos))
		}
		if p.skipSpace(); p.pos != len(p.data) {
			return refuse(ReasonLabelSyntax, "trailing data after the object")
		}
		break
	}
	switch {
	case !haveID && idWrong:
		return refuse(ReasonLabelMissing, "field "+d.idField+" is not a string or a number")
	case !haveID:
		return refuse(ReasonLabelMissing, "field "+d.idField+" is required")
	case !haveLabel && labelWrong:
		return refuse(ReasonLabelMissing, "field "+d.labelField+" is not a number")
	case !haveLabel:
		return refuse(ReasonLabelMissing, "field "+d.labelField+" is required")
	}
	if idIsNum {
		d.id = strconv.AppendFloat(d.id[:0], idNum, 'f', -1, 64)
	}
	if len(d.id) == 0 || len(d.id) > d.maxID {
		return refuse(ReasonLabelIDTooLong, "field "+d.idField+" must be 1 to "+strconv.Itoa(d.maxID)+" bytes (labels.max_id_bytes)")
	}
	y := float32(v)
	if labelBad || !models.ValidLabel(d.link, d.classes, y) {
		return refuse(ReasonLabelInvalid, "field "+d.labelField+": "+d.domain())
	}
	if float64(y) < d.min || float64(y) > d.max {
		return refuse(ReasonLabelOutOfRange, "field "+d.labelField+" is outside labels.min and labels.max")
	}
	return string(d.id), y, pipeline.Rejection{}
}

// domain says which labels the model learns, for a rejection's detail.
func (d *LabelDecoder) domain() string {
	switch d.link {
	case models.LinkSigmoid:
		return "not 0 or 1 (a binary model)"
	case models.LinkSoftmax:
		return "not a class index in 0.." + strconv.Itoa(d.classes-1)
	}
	return "not a finite float32"
}

// ParkedLabelBytes bounds the Redis memory one parked label of the spec
// takes: its key twice (its own entry and its label batch's member), each
// up to len(redis.key_prefix) + len("early-label:") + labels.max_id_bytes
// bytes, rounded up by a quarter for the allocator's size classes, plus 384
// bytes of Redis's per-entry structures (measured on redis-server 7:
// 2,805 bytes per label with 1 KB ids, against a bound of 3,012).
// labels.max_parked times it bounds the memory of every parked label.
func ParkedLabelBytes(spec *pipeline.Spec) int {
	key := len(spec.Redis.Prefix()) + len("early-label:") + spec.Labels.MaxIDBytes
	return 2*(key+key/4) + 384
}
