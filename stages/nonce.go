package stages

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
)

// gcmNonceSize is AES-GCM's standard nonce length.
const gcmNonceSize = 12

// maxGCMNonces is how many nonces one gcmNonces hands out.
const maxGCMNonces = 1 << 63

// errNoncesExhausted is returned once a gcmNonces has handed out
// maxGCMNonces nonces.
var errNoncesExhausted = errors.New("aes-gcm nonces exhausted for this key: restart to draw a new start")

// gcmNonces hands out AES-GCM nonces for one key in one process: a random
// 96-bit start drawn once from crypto/rand (a 4-byte prefix and a 64-bit
// counter start), then the counter counted up by one per nonce (nonce =
// prefix ‖ big-endian(start + i mod 2^64)). It replaces a crypto/rand read
// per encrypted value. It is safe for concurrent use (one atomic add per
// nonce); an Anonymize and its clones share one.
//
// Uniqueness:
//   - Within one gcmNonces the nonces never repeat: the i-th nonce has
//     counter start+i mod 2^64, and distinct i below 2^64 give distinct
//     counters under the same prefix. The counter stops at 2^63 nonces
//     (next then fails with errNoncesExhausted, so a wrap can never come
//     near): at a billion values a second that is 292 years.
//   - Two gcmNonces for the same key (another process, a restart, another
//     NewAnonymize) repeat a nonce only if their random prefixes are equal
//     (2^-32) and their counter ranges of n1 and n2 values overlap (at most
//     (n1+n2)/2^64): at most (n1+n2)/2^96 in all. Over S starts that
//     together seal N values the chance of any repeat is below S·N/2^96,
//     e.g. 2^-26 for a million restarts and 2^50 values, where a random
//     96-bit nonce per value already passes NIST SP 800-38D's bound
//     (2^32 values per key) long before.
type gcmNonces struct {
	prefix [4]byte
	start  uint64
	issued atomic.Uint64
}

// newGCMNonces draws a random start.
func newGCMNonces() (*gcmNonces, error) {
	var seed [gcmNonceSize]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("nonce start: %w", err)
	}
	g := &gcmNonces{start: binary.BigEndian.Uint64(seed[4:])}
	copy(g.prefix[:], seed[:4])
	return g, nil
}

// next writes the next nonce into dst[:gcmNonceSize].
func (g *gcmNonces) next(dst []byte) error {
	i := g.issued.Add(1) - 1
	if i >= maxGCMNonces {
		return errNoncesExhausted
	}
	_ = dst[gcmNonceSize-1]
	copy(dst, g.prefix[:])
	binary.BigEndian.PutUint64(dst[4:gcmNonceSize], g.start+i)
	return nil
}
