package streams

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/driftline/driftline/pipeline"
)

// Kinds of malformed rows that Corrupt makes.
const (
	CorruptWrongType    = "wrong_type"    // a float field holds a string
	CorruptMissingField = "missing_field" // event_id or ts is removed
	CorruptTruncated    = "truncated"     // the row is cut short
	CorruptInvalidUTF8  = "invalid_utf8"  // a string value holds bytes that are not UTF-8
	CorruptHugeString   = "huge_string"   // a string value of HugeStringLen bytes
	CorruptDeepNesting  = "deep_nesting"  // a value nested DeepNestingDepth arrays deep
	CorruptNotObject    = "not_object"    // valid JSON whose top level is not an object
)

// CorruptKinds lists every kind Corrupt picks from, in a fixed order.
var CorruptKinds = []string{
	CorruptWrongType, CorruptMissingField, CorruptTruncated, CorruptInvalidUTF8,
	CorruptHugeString, CorruptDeepNesting, CorruptNotObject,
}

const (
	// HugeStringLen is the length of the string a huge_string row carries: far above
	// any sane field, below Kafka's default 1 MiB record limit.
	HugeStringLen = 256 << 10
	// DeepNestingDepth is the nesting of a deep_nesting row, above encoding/json's limit
	// of 10,000.
	DeepNestingDepth = 10_001
)

// Corrupt returns a malformed variant of row, a valid JSON object written by AppendJSON,
// and the kind of damage, picked uniformly from CorruptKinds with rng. When row lacks
// the field the picked kind needs, Corrupt truncates it instead and says so. The same
// rng state and row give the same result. row is not modified.
func Corrupt(rng *rand.Rand, row []byte) (bad []byte, kind string) {
	kind = CorruptKinds[rng.IntN(len(CorruptKinds))]
	bad, err := CorruptAs(kind, rng, row)
	if err != nil {
		// CorruptAs fails only for unknown kinds or rows AppendJSON did not write;
		// a truncation is malformed for any row.
		return truncate(rng, row), CorruptTruncated
	}
	return bad, kind
}

// CorruptAs returns row, a JSON object written by AppendJSON, damaged in the given way.
// It fails for an unknown kind, or when row lacks the field the kind needs. row is not
// modified.
func CorruptAs(kind string, rng *rand.Rand, row []byte) ([]byte, error) {
	switch kind {
	case CorruptWrongType:
		field := "f" + strconv.Itoa(rng.IntN(10))
		start, end, ok := findValue(row, field)
		if !ok {
			return nil, fmt.Errorf("corrupt %s: row has no field %q", kind, field)
		}
		return splice(row, start, end, `"`+string(row[start:end])+`x"`), nil
	case CorruptMissingField:
		field := [...]string{"event_id", "ts"}[rng.IntN(2)]
		start, end, ok := findValue(row, field)
		if !ok {
			return nil, fmt.Errorf("corrupt %s: row has no field %q", kind, field)
		}
		// Remove `"field":value,` (key starts 3+len(field) bytes before the value).
		keyStart := start - len(field) - 3
		if end < len(row) && row[end] == ',' {
			end++
		} else if keyStart > 0 && row[keyStart-1] == ',' {
			keyStart--
		}
		return splice(row, keyStart, end, ""), nil
	case CorruptTruncated:
		if len(row) < 2 {
			return nil, fmt.Errorf("corrupt %s: row of %d bytes is too short", kind, len(row))
		}
		return truncate(rng, row), nil
	case CorruptInvalidUTF8:
		field := [...]string{"user_id", "country", "device", "channel"}[rng.IntN(4)]
		start, end, ok := findValue(row, field)
		if !ok || end-start < 2 {
			return nil, fmt.Errorf("corrupt %s: row has no string field %q", kind, field)
		}
		bad := [...]string{"\xff", "\xc3\x28", "\xed\xa0\x80", "\xf8\x88\x80\x80\x80"}[rng.IntN(4)]
		return splice(row, start+1, start+1, bad), nil
	case CorruptHugeString:
		field := [...]string{"user_id", "email", "country", "channel"}[rng.IntN(4)]
		start, end, ok := findValue(row, field)
		if !ok {
			return nil, fmt.Errorf("corrupt %s: row has no field %q", kind, field)
		}
		huge := make([]byte, HugeStringLen+2)
		huge[0], huge[len(huge)-1] = '"', '"'
		randomLetters(rng, huge[1:len(huge)-1])
		return splice(row, start, end, string(huge)), nil
	case CorruptDeepNesting:
		field := "f" + strconv.Itoa(rng.IntN(10))
		start, end, ok := findValue(row, field)
		if !ok {
			return nil, fmt.Errorf("corrupt %s: row has no field %q", kind, field)
		}
		nested := bytes.Repeat([]byte{'['}, DeepNestingDepth)
		nested = append(nested, row[start:end]...)
		nested = append(nested, bytes.Repeat([]byte{']'}, DeepNestingDepth)...)
		return splice(row, start, end, string(nested)), nil
	case CorruptNotObject:
		switch rng.IntN(4) {
		case 0:
			return splice(splice(row, len(row), len(row), "]"), 0, 0, "["), nil
		case 1:
			return pipeline.AppendJSONString(nil, string(row)), nil
		case 2:
			return []byte("null"), nil
		default:
			return strconv.AppendInt(nil, rng.Int64N(1_000_000), 10), nil
		}
	}
	return nil, fmt.Errorf("unknown corruption kind %q", kind)
}

// findValue returns the byte range of the value of top-level key field in row, an
// object written by AppendJSON, whose strings hold no unescaped quotes.
func findValue(row []byte, field string) (start, end int, ok bool) {
	key := `"` + field + `":`
	for from := 0; ; {
		i := bytes.Index(row[from:], []byte(key))
		if i < 0 {
			return 0, 0, false
		}
		i += from
		if i > 0 && (row[i-1] == '{' || row[i-1] == ',') {
			start = i + len(key)
			break
		}
		from = i + 1
	}
	end = start
	if end < len(row) && row[end] == '"' {
		for end++; end < len(row) && row[end] != '"'; end++ {
			if row[end] == '\\' {
				end++
			}
		}
		return start, min(end+1, len(row)), end < len(row)
	}
	for end < len(row) && row[end] != ',' && row[end] != '}' {
		end++
	}
	return start, end, end > start
}

// splice returns a new slice: row with row[start:end] replaced by s.
func splice(row []byte, start, end int, s string) []byte {
	out := make([]byte, 0, len(row)-(end-start)+len(s))
	out = append(out, row[:start]...)
	out = append(out, s...)
	return append(out, row[end:]...)
}

// truncate returns a copy of row cut to between 1 and len(row)-1 bytes.
func truncate(rng *rand.Rand, row []byte) []byte {
	if len(row) < 2 {
		return []byte("{")
	}
	return bytes.Clone(row[:1+rng.IntN(len(row)-1)])
}

// randomLetters fills b with random lowercase letters from rng, twelve
// base-26 digits of each 64-bit draw: nearly uniform (26^12 divides 2^64
// to within 0.6%), and far cheaper than one IntN per letter for a
// HugeStringLen string.
func randomLetters(rng *rand.Rand, b []byte) {
	for i := 0; i < len(b); {
		r := rng.Uint64()
		for k := 0; k < 12 && i < len(b); k++ {
			b[i] = 'a' + byte(r%26)
			r /= 26
			i++
		}
	}
}
