package stages

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"hash"
	"math"
	"strconv"
	"testing"

	"github.com/driftline/driftline/pipeline"
)

// floor is the hand-written minimum of the chain's work on the benchmark's
// events (BenchmarkChain's spec and rows), per event:
//
//   - a hand tokenizer over the JSON object: each key is matched against the
//     schema's field names (the next field in schema order first, then a
//     linear search); string values are kept as views of the input (a
//     backslash skips the next byte; nothing is unescaped); the 10 floats
//     are parsed with the decode stage's exact parseFloat; the timestamp is
//     kept as a view, not parsed;
//   - anonymize's minimum: one HMAC-SHA256 of user_id (the keyed hash reused
//     with Reset, no pseudonym cache), hex-encoded after "tok_"; one
//     AES-256-GCM seal of email with a counter nonce and the field name as
//     additional data, base64-encoded; phone masked but its last 4 bytes;
//   - the logistic model: 12 dense values (f0–f9, n, flag; absent ones
//     skipped) and 3 FNV-hashed categoricals (country, device, channel;
//     2^16 buckets) dotted with float32 weights, then the sigmoid;
//   - the prediction: key = the event id's bytes, value = the chain's
//     prediction JSON (same fields, same order) appended to one reused
//     buffer; the model's constant fields are one precomputed fragment, and
//     string values are copied from the input's quoted bytes, not escaped.
//
// It does no validation (no UTF-8 check, no grammar check beyond what
// tokenizing needs, no enum, range or required checks, no per-row error
// details), builds no Arrow columns, no batch state and no per-batch
// output slices, and allocates nothing per event. Its output equals the
// chain's (TestFloorMatchesChain) except the ciphertext's nonce.
type floor struct {
	names   []string
	mac     hash.Hash
	sum     []byte
	aead    cipher.AEAD
	nonce   [gcmNonceSize]byte
	counter uint64
	sealed  []byte
	ad      []byte    // "email"
	weights []float32 // 12 dense, then 2^16 hashed
	bias    float32
	frag    []byte // `,"warm":false,...,"partition":`
	out     []byte
	ends    []int // key end, value end per event in out
	view    [floorFields][]byte
	dense   [12]float64
	present [12]bool
}

// Field positions of the benchmark spec's schema (helpers_test.go).
const (
	fEventID = iota
	fTS
	fUserID
	fEmail
	fPhone
	fCountry
	fDevice
	fChannel
	fF0                    // f0 … f9
	floorFields = fF0 + 13 // f0 … f9, n, flag, amount
)

func newFloor(tb testing.TB, weights []float32) *floor {
	keys := testKeys()
	block, err := aes.NewCipher(keys.AES)
	must(tb, err)
	aead, err := cipher.NewGCM(block)
	must(tb, err)
	spec := benchSpec(tb)
	fl := &floor{mac: hmac.New(sha256.New, keys.HMAC), aead: aead, ad: []byte("email"), weights: weights}
	for _, f := range spec.Schema.Fields {
		fl.names = append(fl.names, f.Name)
	}
	if len(fl.names) != floorFields {
		tb.Fatalf("floor: the spec has %d fields, the floor knows %d", len(fl.names), floorFields)
	}
	fl.frag = []byte(`,"warm":false,"model":"` + spec.Model.Name + `","version":"` + spec.Model.Version + `","arm":"champion","partition":`)
	return fl
}

// batch runs the floor over rows at offsets base, base+1, …, reusing its
// buffers.
func (fl *floor) batch(rows [][]byte, partition int32, base int64) {
	fl.out = fl.out[:0]
	fl.ends = fl.ends[:0]
	for i, r := range rows {
		fl.event(r, partition, base+int64(i))
	}
}

func (fl *floor) event(data []byte, partition int32, offset int64) {
	for k := range fl.view {
		fl.view[k] = nil
	}
	fl.present = [12]bool{}
	next := 0
	p := 1 // past '{'
	for p < len(data) {
		for data[p] == ' ' || data[p] == ',' {
			p++
		}
		if data[p] == '}' {
			break
		}
		ks := p + 1
		p = floorStringEnd(data, ks)
		key := data[ks:p]
		p += 2 // '"' and ':'
		fi := -1
		if next < len(fl.names) && fl.names[next] == string(key) {
			fi = next
		} else {
			for k, n := range fl.names {
				if n == string(key) {
					fi = k
					break
				}
			}
		}
		next = fi + 1
		vs := p
		if data[p] == '"' {
			p = floorStringEnd(data, p+1) + 1
		} else {
			for p < len(data) && data[p] != ',' && data[p] != '}' {
				p++
			}
		}
		switch {
		case fi >= fF0 && fi < fF0+10:
			v, _ := parseFloat(data[vs:p])
			fl.dense[fi-fF0], fl.present[fi-fF0] = v, true
		case fi >= 0:
			fl.view[fi] = data[vs:p] // strings keep their quotes
		}
	}
	score := fl.predict()

	out := append(fl.out, unquote(fl.view[fEventID])...)
	fl.ends = append(fl.ends, len(out))
	out = append(out, `{"event_id":`...)
	out = append(out, fl.view[fEventID]...)
	out = append(out, `,"score":`...)
	out = strconv.AppendFloat(out, float64(score), 'g', -1, 32)
	out = append(out, `,"class":`...)
	if score > 0.5 {
		out = append(out, '1')
	} else {
		out = append(out, '0')
	}
	out = append(out, fl.frag...)
	out = strconv.AppendInt(out, int64(partition), 10)
	out = append(out, `,"offset":`...)
	out = strconv.AppendInt(out, offset, 10)
	out = append(out, `,"user_id":"tok_`...)
	fl.mac.Reset()
	fl.mac.Write(unquote(fl.view[fUserID]))
	fl.sum = fl.mac.Sum(fl.sum[:0])
	out = hex.AppendEncode(out, fl.sum[:16])
	out = append(out, `","email":"`...)
	binary.BigEndian.PutUint64(fl.nonce[4:], fl.counter)
	fl.counter++
	fl.sealed = append(fl.sealed[:0], fl.nonce[:]...)
	fl.sealed = fl.aead.Seal(fl.sealed, fl.nonce[:], unquote(fl.view[fEmail]), fl.ad)
	out = base64.StdEncoding.AppendEncode(out, fl.sealed)
	out = append(out, `","phone":"`...)
	phone := unquote(fl.view[fPhone])
	for k, c := range phone {
		if k < len(phone)-4 {
			c = '*'
		}
		out = append(out, c)
	}
	out = append(out, `","country":`...)
	out = append(out, fl.view[fCountry]...)
	out = append(out, '}')
	fl.ends = append(fl.ends, len(out))
	fl.out = out
}

// predict is the logistic model on the event's features.
func (fl *floor) predict() float32 {
	m := float64(fl.bias)
	for j, x := range fl.dense[:10] {
		if fl.present[j] {
			m += float64(fl.weights[j]) * x
		}
	}
	for k, fi := range [3]int{fCountry, fDevice, fChannel} {
		h := uint32(fnvOffset32)
		h = (h ^ uint32(k)) * fnvPrime32
		h = (h ^ 0xff) * fnvPrime32
		for _, c := range unquote(fl.view[fi]) {
			h = (h ^ uint32(c)) * fnvPrime32
		}
		m += float64(fl.weights[12+int(h&(1<<16-1))])
	}
	return float32(1 / (1 + math.Exp(-m)))
}

// floorStringEnd is the index of the '"' closing the string whose content
// starts at p.
func floorStringEnd(data []byte, p int) int {
	for data[p] != '"' {
		if data[p] == '\\' {
			p++
		}
		p++
	}
	return p
}

func unquote(v []byte) []byte { return v[1 : len(v)-1] }

// BenchmarkFloor times the floor (see floor) on BenchmarkChain's events,
// one op = one batch of 1,024. Its cpu-ns/event is the denominator of "×
// the floor"; the numerator is BenchmarkChain/dedupe=off's, from the same
// process (`task bench:floor`). The two run one after the other rather than
// interleaved: interleaved, the GC work the chain's garbage causes runs
// partly while the floor is timed and is charged to it.
func BenchmarkFloor(b *testing.B) {
	rows := benchRows(b)
	fl := newFloor(b, make([]float32, 12+1<<16))
	perEvent(b, func() { fl.batch(rows, 0, 0) })
	if len(fl.ends) != 2*benchBatch {
		b.Fatalf("%d outputs", len(fl.ends)/2)
	}
}

// TestFloorMatchesChain checks that the floor does the chain's work: on the
// benchmark's events its keys and prediction values equal the chain's
// (an untrained model: zero weights), but for the email ciphertexts, whose
// nonces differ and which must both decrypt to the event's email.
func TestFloorMatchesChain(t *testing.T) {
	spec := benchSpec(t)
	evs, rows := genEvents(t, 42, 64, 10_000)
	c := newChain(t, spec, nil)
	var batch pipeline.Batch
	batch.Reset(benchMessages(rows))
	mustProcess(t, &batch, c.stages()...)
	fl := newFloor(t, make([]float32, 12+1<<16))
	fl.batch(rows, 0, 0)
	if len(batch.Outputs) != len(rows) || len(fl.ends) != 2*len(rows) {
		t.Fatalf("chain wrote %d outputs, floor %d, for %d rows", len(batch.Outputs), len(fl.ends)/2, len(rows))
	}
	start := 0
	for i, o := range batch.Outputs {
		key, val := fl.out[start:fl.ends[2*i]], fl.out[fl.ends[2*i]:fl.ends[2*i+1]]
		start = fl.ends[2*i+1]
		if !bytes.Equal(key, o.Key) {
			t.Fatalf("row %d: floor key %q, chain %q", i, key, o.Key)
		}
		var fv, cv map[string]any
		must(t, json.Unmarshal(val, &fv))
		must(t, json.Unmarshal(o.Value, &cv))
		for _, m := range []map[string]any{fv, cv} {
			plain, err := Decrypt(testKeys().AES, m["email"].(string), []byte("email"))
			must(t, err)
			if string(plain) != evs[i].Email {
				t.Fatalf("row %d: email decrypts to %q, want %q", i, plain, evs[i].Email)
			}
			delete(m, "email")
		}
		fj, _ := json.Marshal(fv)
		cj, _ := json.Marshal(cv)
		if !bytes.Equal(fj, cj) {
			t.Fatalf("row %d:\nfloor %s\nchain %s", i, fj, cj)
		}
		if n := len(val) - len(o.Value); n != 0 {
			t.Fatalf("row %d: floor value is %d bytes longer than the chain's", i, n)
		}
	}
}
