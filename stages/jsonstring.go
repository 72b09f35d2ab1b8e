package stages

import (
	"encoding/binary"
	"unsafe"

	"github.com/driftline/driftline/pipeline"
)

// appendJSONString appends s as a JSON string, byte for byte what
// pipeline.AppendJSONString writes. Strings of printable ASCII without '"'
// or '\' (pseudonyms, base64, ids, most categoricals) are checked 8 bytes
// at a time and copied whole; any other string goes to
// pipeline.AppendJSONString.
func appendJSONString(dst []byte, s string) []byte {
	i := 0
	if len(s) >= 8 {
		b := unsafe.Slice(unsafe.StringData(s), len(s))
		for ; i+8 <= len(s); i += 8 {
			if needsEscape8(binary.LittleEndian.Uint64(b[i:])) {
				return pipeline.AppendJSONString(dst, s)
			}
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			return pipeline.AppendJSONString(dst, s)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// needsEscape8 reports whether any of w's 8 bytes is below 0x20, '"', '\\'
// or not ASCII (escapeMask8).
func needsEscape8(w uint64) bool { return escapeMask8(w) != 0 }

// escapeMask8 has the high bit set of each byte of w (little-endian) that
// is below 0x20, '"', '\\' or not ASCII, and possibly of bytes above such
// a byte, but of none below the first: its lowest set bit is in the first
// such byte. (x - 0x01…) &^ x & 0x80… is non-zero exactly when some byte of
// x is zero (the lowest such byte is always flagged, and no byte below
// it), and likewise (w - 0x20…) &^ w & 0x80… when some byte is below 0x20.
func escapeMask8(w uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	zero := func(x uint64) uint64 { return (x - ones) &^ x & highs }
	return (w-0x20*ones)&^w&highs | zero(w^('"'*ones)) | zero(w^('\\'*ones)) | w&highs
}
