package stages

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/driftline/driftline/pipeline"
)

// RedactedValue replaces every value of a field under the redact operator.
const RedactedValue = "[REDACTED]"

// TokenPrefix starts every pseudonym, so tokens are recognisable.
const TokenPrefix = "tok_"

// Keys are the secrets the anonymize stage uses.
type Keys struct {
	// HMAC keys pseudonymization (HMAC-SHA256).
	HMAC []byte
	// AES is a 32-byte AES-256 key for field and DLQ encryption.
	AES []byte
	// AESKeyID names AES in the driftline.key_id header.
	AESKeyID string
}

// LoadKeys reads the keys the spec names, from env vars or files. An env var
// or file that is named but empty or missing is an error naming it.
func LoadKeys(an *pipeline.AnonymizeSpec) (Keys, error) {
	k := Keys{AESKeyID: an.EncryptionKeyID}
	var err error
	if an.HMACKeyEnv != "" || an.HMACKeyFile != "" {
		if k.HMAC, err = readSecret(an.HMACKeyEnv, an.HMACKeyFile); err != nil {
			return k, fmt.Errorf("hmac key: %w", err)
		}
	}
	if an.EncryptionKeyEnv != "" || an.EncryptionKeyFile != "" {
		raw, err := readSecret(an.EncryptionKeyEnv, an.EncryptionKeyFile)
		if err != nil {
			return k, fmt.Errorf("encryption key: %w", err)
		}
		if k.AES, err = decodeAESKey(string(raw)); err != nil {
			return k, fmt.Errorf("encryption key: %w", err)
		}
	}
	return k, nil
}

// readSecret resolves the key an env var or a file holds (the spec names
// one; both is an error), with pipeline.SecretRef's errors.
func readSecret(env, file string) ([]byte, error) {
	sec, err := pipeline.SecretRef{Env: env, File: file}.Resolve()
	if err != nil {
		return nil, err
	}
	return []byte(sec.Reveal()), nil
}

func decodeAESKey(s string) ([]byte, error) {
	if b, err := hex.DecodeString(s); err == nil && len(b) == 32 {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == 32 {
		return b, nil
	}
	return nil, errors.New("want 32 bytes, hex (64 chars) or base64 encoded")
}

// Anonymize applies each PII field's operator to the decoded columns:
//   - pseudonymize: "tok_" + hex of the first 16 bytes of HMAC-SHA256(key,
//     value); equal values give equal tokens, so tokens stay joinable;
//   - mask: every character but the last keep_last (default 4) becomes '*';
//   - redact: the value becomes "[REDACTED]";
//   - drop: the value becomes null;
//   - encrypt: base64(nonce ‖ AES-256-GCM(value)), with the field name as
//     additional data; outputs carrying it get a driftline.key_id header.
//     The 12-byte nonces count up from a random start per key (gcmNonces):
//     unique without a crypto/rand read per value.
//
// It also encrypts DLQ payloads when the spec asks. The keyed HMAC is
// reused with Reset, and repeated values hit a bounded cache of pseudonyms
// (at most PseudonymCacheSize entries, emptied when full). The cache lives
// only in this process's memory, next to the plaintext it came from; it is
// never logged, exported or snapshotted, and since an Anonymize holds one
// key for its life, a new key (rotation) means a new Anonymize and an empty
// cache. An Anonymize is used by one partition loop at a time.
type Anonymize struct {
	cols    []anonCol
	newMAC  func() hash.Hash
	mac     hash.Hash
	aead    cipher.AEAD
	nonces  *gcmNonces // shared with clones: one counter per key
	keyID   string
	sum     []byte
	scratch []byte
	sealed  []byte
	// pseudonyms caches token bytes by plaintext; nil when disabled.
	pseudonyms map[string][pseudonymLen]byte
	cacheSize  int
	// lastData is each column's output bytes in the previous batch.
	lastData []int
	// idx and arrs are the batch's anonymized columns, replaced at once.
	idx  []int
	arrs []arrow.Array
}

// PseudonymCacheSize bounds the pseudonym cache of each Anonymize.
const PseudonymCacheSize = 1 << 16

// pseudonymLen is len(TokenPrefix) + 32 hex digits.
const pseudonymLen = len(TokenPrefix) + 32

type anonCol struct {
	index    int
	name     string
	op       pipeline.AnonymizeOp
	keepLast int
}

// NewAnonymize builds the stage; keys must hold what the spec's operators need.
func NewAnonymize(spec *pipeline.Spec, keys Keys) (*Anonymize, error) {
	a := &Anonymize{keyID: keys.AESKeyID}
	for _, f := range spec.Stages.Anonymize.Fields {
		keep := f.KeepLast
		if keep == 0 {
			keep = 4
		}
		a.cols = append(a.cols, anonCol{index: spec.FieldIndex(f.Field), name: f.Field, op: f.Op, keepLast: keep})
		switch f.Op {
		case pipeline.OpPseudonymize:
			if len(keys.HMAC) == 0 {
				return nil, fmt.Errorf("anonymize: field %s: pseudonymize needs an hmac key", f.Field)
			}
		case pipeline.OpEncrypt:
			if len(keys.AES) == 0 {
				return nil, fmt.Errorf("anonymize: field %s: encrypt needs an encryption key", f.Field)
			}
		}
	}
	if len(keys.HMAC) > 0 {
		key := bytes.Clone(keys.HMAC)
		a.newMAC = func() hash.Hash { return hmac.New(sha256.New, key) }
		a.mac = a.newMAC()
		a.cacheSize = PseudonymCacheSize
		a.pseudonyms = make(map[string][pseudonymLen]byte)
	}
	if len(keys.AES) > 0 {
		block, err := aes.NewCipher(keys.AES)
		if err != nil {
			return nil, fmt.Errorf("anonymize: %w", err)
		}
		if a.aead, err = cipher.NewGCM(block); err != nil {
			return nil, fmt.Errorf("anonymize: %w", err)
		}
		if a.nonces, err = newGCMNonces(); err != nil {
			return nil, fmt.Errorf("anonymize: %w", err)
		}
	}
	return a, nil
}

// Name implements pipeline.Stage.
func (a *Anonymize) Name() string { return "anonymize" }

// Process implements pipeline.Stage. Each anonymized column is written
// straight into Arrow buffers (offsets, bytes and, when a row is null, a
// validity bitmap), sized from the previous batch: from the batch's Pool
// when it has one (they return to it with the record, see decode), else
// fresh.
func (a *Anonymize) Process(_ context.Context, b *pipeline.Batch) error {
	n := b.Len()
	if len(a.lastData) < len(a.cols) {
		a.lastData = make([]int, len(a.cols))
	}
	pool := b.Pool
	a.idx, a.arrs = a.idx[:0], a.arrs[:0]
	defer clear(a.arrs)
	slots := make(bufferSlots, 0, 3*len(a.cols))
	for k, c := range a.cols {
		col := b.Record.Column(c.index).(*array.String)
		valid := pool.Get(int(bitutil.BytesForBits(int64(n))))
		clear(valid)
		offs := arrow.Int32Traits.CastFromBytes(pool.Get(arrow.Int32Traits.BytesRequired(n + 1)))
		offs[0] = 0
		data := pool.Get(a.lastData[k] + a.lastData[k]/8)[:0]
		nulls := 0
		for i := range n {
			if !b.OK(i) || col.IsNull(i) || c.op == pipeline.OpDrop {
				nulls++
				offs[i+1] = int32(len(data))
				continue
			}
			var err error
			if data, err = a.appendApplied(data, c, col.Value(i)); err != nil {
				return fmt.Errorf("anonymize: field %s: %w", c.name, err)
			}
			bitutil.SetBit(valid, i)
			offs[i+1] = int32(len(data))
		}
		a.lastData[k] = len(data)
		var validity *memory.Buffer
		if nulls > 0 {
			validity = poolBuffer(valid, pool)
		} else {
			pool.Put(valid)
		}
		bufs := slots.take(validity, poolBuffer(arrow.Int32Traits.CastToBytes(offs), pool), poolBuffer(data, pool))
		a.idx = append(a.idx, c.index)
		a.arrs = append(a.arrs, newPoolArray(arrow.BinaryTypes.String, n, bufs, nulls))
	}
	if len(a.idx) > 0 {
		b.ReplaceColumns(a.idx, a.arrs)
	}
	return nil
}

// appendApplied appends the anonymized value of v to dst.
func (a *Anonymize) appendApplied(dst []byte, c anonCol, v string) ([]byte, error) {
	switch c.op {
	case pipeline.OpPseudonymize:
		return a.appendPseudonym(dst, v), nil
	case pipeline.OpMask:
		return appendMaskedASCII(dst, v, c.keepLast), nil
	case pipeline.OpRedact:
		return append(dst, RedactedValue...), nil
	case pipeline.OpEncrypt:
		// Seal reads plain and ad and keeps neither: views are enough.
		return a.Encrypt(dst, unsafe.Slice(unsafe.StringData(v), len(v)), unsafe.Slice(unsafe.StringData(c.name), len(c.name)))
	}
	return nil, fmt.Errorf("unknown operator %q", c.op)
}

// maskStars is a run of '*' that appendMaskedASCII copies from.
const maskStars = "****************************************************************"

// appendMaskedASCII is appendMasked with a fast path for ASCII values (one
// character a byte): the stars are copied in one go, then the last keep
// bytes.
func appendMaskedASCII(dst []byte, v string, keep int) []byte {
	for i := 0; i < len(v); i++ {
		if v[i] >= utf8.RuneSelf {
			return appendMasked(dst, v, keep)
		}
	}
	stars := max(len(v)-keep, 0)
	for stars > len(maskStars) {
		dst = append(dst, maskStars...)
		stars -= len(maskStars)
	}
	dst = append(dst, maskStars[:stars]...)
	return append(dst, v[max(len(v)-keep, 0):]...)
}

// pseudonymize returns v's pseudonym appended to a.scratch, valid until the
// next call.
func (a *Anonymize) pseudonymize(v string) []byte {
	a.scratch = a.appendPseudonym(a.scratch, v)
	return a.scratch
}

// appendPseudonym appends v's pseudonym to dst.
func (a *Anonymize) appendPseudonym(dst []byte, v string) []byte {
	if tok, ok := a.pseudonyms[v]; ok {
		return appendToken(dst, &tok)
	}
	a.mac.Reset()
	// The MAC reads v and keeps nothing, so a view of it is enough.
	a.mac.Write(unsafe.Slice(unsafe.StringData(v), len(v)))
	a.sum = a.mac.Sum(a.sum[:0])
	var tok [pseudonymLen]byte
	copy(tok[:], TokenPrefix)
	hex.Encode(tok[len(TokenPrefix):], a.sum[:16])
	if a.pseudonyms != nil {
		if len(a.pseudonyms) >= a.cacheSize {
			clear(a.pseudonyms)
		}
		a.pseudonyms[strings.Clone(v)] = tok
	}
	return appendToken(dst, &tok)
}

// appendToken appends *tok to dst with one fixed-size copy.
func appendToken(dst []byte, tok *[pseudonymLen]byte) []byte {
	n := len(dst)
	dst = slices.Grow(dst, pseudonymLen)[:n+pseudonymLen]
	*(*[pseudonymLen]byte)(dst[n:]) = *tok
	return dst
}

// disablePseudonymCache turns the pseudonym cache off (benchmarks compare).
func (a *Anonymize) disablePseudonymCache() { a.pseudonyms = nil }

// Encrypt appends base64(nonce ‖ AES-256-GCM(plain, ad)) to dst.
func (a *Anonymize) Encrypt(dst, plain, ad []byte) ([]byte, error) {
	if a.aead == nil {
		return nil, errors.New("no encryption key")
	}
	const ns = gcmNonceSize // cipher.NewGCM's
	sealed := slices.Grow(a.sealed[:0], ns+len(plain)+a.aead.Overhead())[:ns]
	if err := a.nonces.next(sealed); err != nil {
		return nil, err
	}
	sealed = a.aead.Seal(sealed, sealed[:ns], plain, ad)
	a.sealed = sealed
	return base64.StdEncoding.AppendEncode(dst, sealed), nil
}

// DLQAssociatedData binds encrypted DLQ payloads to their use.
const DLQAssociatedData = "driftline.dlq"

// Clone returns an Anonymize with the same keys and its own scratch state,
// for another partition loop. The clones share one nonce counter.
func (a *Anonymize) Clone() *Anonymize {
	c := *a
	c.sum, c.scratch, c.sealed, c.lastData, c.idx, c.arrs = nil, nil, nil, nil, nil, nil
	if a.mac != nil {
		c.mac = a.newMAC()
		c.pseudonyms = make(map[string][pseudonymLen]byte)
	}
	return &c
}

// HeaderEncryptedKey carries a DLQ record's original key, encrypted.
const HeaderEncryptedKey = "driftline.source.key.encrypted"

// EncryptDLQ is a pipeline.DLQPayloadFunc: the DLQ value is the input
// encrypted with AES-256-GCM, the input key moves, encrypted, to the
// driftline.source.key.encrypted header, and driftline.key_id names the
// key. The record itself has no key, so no plaintext reaches the DLQ.
func (a *Anonymize) EncryptDLQ(dst []byte, msg *pipeline.Message) (value, key []byte, hdrs []pipeline.Header, err error) {
	value, err = a.Encrypt(dst, msg.Value, []byte(DLQAssociatedData))
	if err != nil {
		return nil, nil, nil, err
	}
	hdrs = []pipeline.Header{{Key: pipeline.HeaderKeyID, Value: []byte(a.keyID)}}
	if len(msg.Key) > 0 {
		encKey, err := a.Encrypt(nil, msg.Key, []byte(DLQAssociatedData))
		if err != nil {
			return nil, nil, nil, err
		}
		hdrs = append(hdrs, pipeline.Header{Key: HeaderEncryptedKey, Value: encKey})
	}
	return value, nil, hdrs, nil
}

// KeyID is the encryption key's id ("" without one).
func (a *Anonymize) KeyID() string { return a.keyID }

// Decrypt reverses Encrypt, for operators who hold the key.
func Decrypt(key []byte, text string, ad []byte) ([]byte, error) {
	sealed, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("decrypt: ciphertext too short")
	}
	return aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], ad)
}
