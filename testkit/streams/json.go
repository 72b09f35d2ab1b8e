package streams

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
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
	dst = appendString(dst, e.ID)
	dst = append(dst, `,"ts":"`...)
	dst = e.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","user_id":`...)
	dst = appendString(dst, e.UserID)
	dst = append(dst, `,"email":`...)
	dst = appendString(dst, e.Email)
	dst = append(dst, `,"phone":`...)
	dst = appendString(dst, e.Phone)
	dst = append(dst, `,"country":`...)
	dst = appendString(dst, e.Country)
	dst = append(dst, `,"device":`...)
	dst = appendString(dst, e.Device)
	dst = append(dst, `,"channel":`...)
	dst = appendString(dst, e.Channel)
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
	dst = appendString(dst, e.ID)
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

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
