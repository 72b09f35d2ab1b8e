package stages

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// TestEncryptNoncesUniqueAcrossGoroutines: clones of one Anonymize (one
// per partition loop) encrypt from 8 goroutines at once; every nonce is
// distinct, and every value decrypts to its plaintext.
func TestEncryptNoncesUniqueAcrossGoroutines(t *testing.T) {
	spec := testSpec(t, false)
	keys := testKeys()
	a, err := NewAnonymize(spec, keys)
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, each = 8, 5000
	out := make([][]string, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		st := a.Clone()
		wg.Go(func() {
			for i := range each {
				ct, err := st.Encrypt(nil, fmt.Appendf(nil, "value %d/%d", g, i), []byte("email"))
				if err != nil {
					t.Error(err)
					return
				}
				out[g] = append(out[g], string(ct))
			}
		})
	}
	wg.Wait()
	seen := make(map[string]string, goroutines*each)
	for g, cts := range out {
		if len(cts) != each {
			t.Fatalf("goroutine %d encrypted %d values, want %d", g, len(cts), each)
		}
		for i, ct := range cts {
			raw, err := base64.StdEncoding.DecodeString(ct)
			if err != nil {
				t.Fatal(err)
			}
			nonce := string(raw[:gcmNonceSize])
			if prev, ok := seen[nonce]; ok {
				t.Fatalf("nonce %x used twice: %d/%d and %s", nonce, g, i, prev)
			}
			seen[nonce] = fmt.Sprintf("%d/%d", g, i)
			plain, err := Decrypt(keys.AES, ct, []byte("email"))
			if want := fmt.Sprintf("value %d/%d", g, i); err != nil || string(plain) != want {
				t.Fatalf("decrypt %d/%d: %q, %v; want %q", g, i, plain, err, want)
			}
		}
	}
}

// TestGCMNonces: nonces count up from the random start under its prefix,
// the count wraps mod 2^64 without repeating, two sequences start apart,
// and the counter refuses past its bound.
func TestGCMNonces(t *testing.T) {
	g, err := newGCMNonces()
	if err != nil {
		t.Fatal(err)
	}
	g.start = 1<<64 - 2 // the counter wraps after two nonces
	var got [4][gcmNonceSize]byte
	for i := range got {
		if err := g.next(got[i][:]); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[i][:4], g.prefix[:]) {
			t.Fatalf("nonce %d %x lacks the prefix %x", i, got[i], g.prefix)
		}
	}
	want := [][]byte{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {0, 0, 0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0, 0, 1}}
	for i, w := range want {
		if !bytes.Equal(got[i][4:], w) {
			t.Errorf("nonce %d counter %x, want %x", i, got[i][4:], w)
		}
	}
	h, err := newGCMNonces()
	if err != nil {
		t.Fatal(err)
	}
	if h.prefix == g.prefix && h.start == g.start {
		t.Error("two sequences drew the same random start")
	}
	h.issued.Store(maxGCMNonces - 1)
	var n [gcmNonceSize]byte
	if err := h.next(n[:]); err != nil {
		t.Fatalf("the last nonce within the bound: %v", err)
	}
	for range 2 {
		if err := h.next(n[:]); !errors.Is(err, errNoncesExhausted) {
			t.Fatalf("past the bound: %v, want errNoncesExhausted", err)
		}
	}
}

// BenchmarkEncrypt is the encrypt operator's AES-256-GCM on one 24-byte
// email (nonce, seal, base64).
func BenchmarkEncrypt(b *testing.B) {
	spec := benchSpec(b)
	a, err := NewAnonymize(spec, testKeys())
	must(b, err)
	plain, ad := []byte("jane.doe1234@example.com"), []byte("email")
	var dst []byte
	b.ReportAllocs()
	for b.Loop() {
		dst, err = a.Encrypt(dst[:0], plain, ad)
		if err != nil {
			b.Fatal(err)
		}
	}
}
