package streams

import (
	"math"
	"strconv"
	"time"

	"github.com/driftline/driftline/pipeline"
)

// AppendJSON appends e as one JSON object, without the label and without a trailing
// newline:
//
//	{"event_id":..,"ts":"<RFC 3339, nanoseconds, UTC>","user_id":..,"email":..,"phone":..,
//	 "country":..,"device":..,"channel":..,"f0":..,...,"f9":..}
//
// Floats use strconv's 'g' format with the shortest exact precision; a NaN or infinite
// value, which no Generator produces, is written as null. Strings are escaped as JSON
// requires, and invalid UTF-8 in them becomes U+FFFD.
func AppendJSON(dst []byte, e *Event) []byte {
	dst = append(dst, `{"event_id":`...)
	dst = pipeline.AppendJSONString(dst, e.ID)
	dst = append(dst, `,"ts":"`...)
	dst = e.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","user_id":`...)
	dst = pipeline.AppendJSONString(dst, e.UserID)
	dst = append(dst, `,"email":`...)
	dst = pipeline.AppendJSONString(dst, e.Email)
	dst = append(dst, `,"phone":`...)
	dst = pipeline.AppendJSONString(dst, e.Phone)
	dst = append(dst, `,"country":`...)
	dst = pipeline.AppendJSONString(dst, e.Country)
	dst = append(dst, `,"device":`...)
	dst = pipeline.AppendJSONString(dst, e.Device)
	dst = append(dst, `,"channel":`...)
	dst = pipeline.AppendJSONString(dst, e.Channel)
	for i, f := range e.F {
		dst = append(dst, `,"f`...)
		dst = strconv.AppendInt(dst, int64(i), 10)
		dst = append(dst, `":`...)
		dst = appendFloat(dst, f)
	}
	return append(dst, '}')
}

// AppendLabelJSON appends {"event_id":..,"label":0|1}: the label message of e for the
// labels topic.
func AppendLabelJSON(dst []byte, e *Event) []byte {
	dst = append(dst, `{"event_id":`...)
	dst = pipeline.AppendJSONString(dst, e.ID)
	dst = append(dst, `,"label":`...)
	dst = strconv.AppendInt(dst, int64(e.Label), 10)
	return append(dst, '}')
}

func appendFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64)
}
