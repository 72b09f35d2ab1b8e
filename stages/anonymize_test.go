package stages

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftline/driftline/pipeline"
)

// anonSpec has one field per operator.
func anonSpec(t *testing.T) *pipeline.Spec {
	return parseTestSpec(t, false, map[string]string{
		"      - {field: phone, op: mask, keep_last: 4}": `      - {field: phone, op: mask, keep_last: 4}
      - {field: channel, op: redact}
      - {field: device, op: drop}`,
		"{name: device, type: string, required: true, enum: [ios, android, web]}":               "{name: device, type: string}",
		"{name: channel, type: string, required: true, enum: [organic, paid, referral, email]}": "{name: channel, type: string}",
		"categorical: [country, device, channel]":                                               "categorical: [country]",
	})
}

func anonymizeRows(t *testing.T, spec *pipeline.Spec, a *Anonymize, rows ...[]byte) *pipeline.Batch {
	t.Helper()
	b := newBatch(0, rows...)
	mustProcess(t, b, NewDecode(spec), NewValidate(spec), a)
	return b
}

func TestAnonymizeOperators(t *testing.T) {
	spec := anonSpec(t)
	keys := testKeys()
	a, err := NewAnonymize(spec, keys)
	if err != nil {
		t.Fatal(err)
	}
	q := func(s string) string { return `"` + s + `"` }
	b := anonymizeRows(t, spec, a,
		row(map[string]string{"user_id": q("alice"), "email": q("alice@example.com"), "phone": q("+1-555-123-4567"), "channel": q("paid"), "device": q("ios")}),
		row(map[string]string{"user_id": q("bob"), "email": q("bob@example.com"), "phone": q("日本語の電話番号"), "channel": "null", "device": "null"}),
		row(map[string]string{"user_id": q("alice"), "email": "null", "phone": q("12"), "channel": q("x")}),
		row(map[string]string{"user_id": q("bad"), "n": "-1", "email": q("secret@example.com")}), // rejected by validate
		row(map[string]string{"user_id": q("carol"), "phone": q("")}),
	)
	get := func(f string, i int) string { return colString(t, b, spec, f, i) }

	// pseudonymize: deterministic, joinable, not the plaintext, the documented form
	tokA, tokB := get("user_id", 0), get("user_id", 1)
	if tokA != get("user_id", 2) {
		t.Errorf("same value, different tokens: %s %s", tokA, get("user_id", 2))
	}
	if tokA == tokB {
		t.Errorf("different values, same token %s", tokA)
	}
	if !strings.HasPrefix(tokA, TokenPrefix) || len(tokA) != len(TokenPrefix)+32 {
		t.Errorf("token %q: want %s + 32 hex digits", tokA, TokenPrefix)
	}
	if _, err := hex.DecodeString(tokA[len(TokenPrefix):]); err != nil {
		t.Errorf("token %q is not hex: %v", tokA, err)
	}
	if strings.Contains(tokA, "alice") {
		t.Errorf("token %q holds the plaintext", tokA)
	}
	// a fresh stage (another partition loop) and a clone give the same tokens
	a2, _ := NewAnonymize(spec, keys)
	for _, st := range []*Anonymize{a2, a.Clone()} {
		b2 := anonymizeRows(t, spec, st, row(map[string]string{"user_id": q("alice")}))
		if got := colString(t, b2, spec, "user_id", 0); got != tokA {
			t.Errorf("other stage: token %s, want %s", got, tokA)
		}
	}
	// another key gives other tokens
	k2 := keys
	k2.HMAC = []byte("another-key")
	a3, _ := NewAnonymize(spec, k2)
	b3 := anonymizeRows(t, spec, a3, row(map[string]string{"user_id": q("alice")}))
	if got := colString(t, b3, spec, "user_id", 0); got == tokA {
		t.Errorf("another key gave the same token %s", got)
	}

	// mask keeps the last 4 runes
	for i, want := range map[int]string{0: "***********4567", 1: "****電話番号", 2: "12", 4: ""} {
		if got := get("phone", i); got != want {
			t.Errorf("row %d: mask %q, want %q", i, got, want)
		}
	}
	// redact and drop
	if got := get("channel", 0); got != RedactedValue {
		t.Errorf("redact: %q", got)
	}
	if got := get("channel", 1); got != "<null>" {
		t.Errorf("redact of null: %q, want null", got)
	}
	for i := range 5 {
		if got := get("device", i); got != "<null>" {
			t.Errorf("row %d: dropped field holds %q", i, got)
		}
	}
	// encrypt: round trip with the field name as associated data, and a
	// nonce per value
	ctA := get("email", 0)
	if strings.Contains(ctA, "alice") {
		t.Fatalf("ciphertext %q holds plaintext", ctA)
	}
	plain, err := Decrypt(keys.AES, ctA, []byte("email"))
	if err != nil || string(plain) != "alice@example.com" {
		t.Fatalf("Decrypt: %q, %v", plain, err)
	}
	if _, err := Decrypt(keys.AES, ctA, []byte("phone")); err == nil {
		t.Error("Decrypt with another field's associated data succeeded")
	}
	if _, err := Decrypt(bytes.Repeat([]byte{1}, 32), ctA, []byte("email")); err == nil {
		t.Error("Decrypt with another key succeeded")
	}
	if _, err := Decrypt(keys.AES, "!!", []byte("email")); err == nil {
		t.Error("Decrypt of non-base64 succeeded")
	}
	if _, err := Decrypt(keys.AES, "AAAA", []byte("email")); err == nil {
		t.Error("Decrypt of a short ciphertext succeeded")
	}
	again := anonymizeRows(t, spec, a, row(map[string]string{"email": q("alice@example.com")}))
	if ct2 := colString(t, again, spec, "email", 0); ct2 == ctA {
		t.Error("two encryptions of one value are equal: nonce reused")
	}
	if got := get("email", 2); got != "<null>" {
		t.Errorf("encrypt of null: %q", got)
	}
	// the rejected row carries nothing
	for _, f := range []string{"user_id", "email", "phone"} {
		if got := get(f, 3); got != "<null>" {
			t.Errorf("rejected row: %s holds %q", f, got)
		}
	}
}

func TestAnonymizeMaskKeepLast(t *testing.T) {
	cases := []struct {
		keep     string
		in, want string
	}{
		{"1", "abcdef", "*****f"},
		{"2", "ñandú", "***dú"},
		{"6", "abc", "abc"},
		{"3", "👍🏽ok!", "**ok!"}, // 👍🏽 is two runes
	}
	for _, tc := range cases {
		spec := parseTestSpec(t, false, map[string]string{"keep_last: 4": "keep_last: " + tc.keep})
		a, err := NewAnonymize(spec, testKeys())
		if err != nil {
			t.Fatal(err)
		}
		b := anonymizeRows(t, spec, a, row(map[string]string{"phone": `"` + tc.in + `"`}))
		if got := colString(t, b, spec, "phone", 0); got != tc.want {
			t.Errorf("keep %s of %q: %q, want %q", tc.keep, tc.in, got, tc.want)
		}
	}
}

// TestAnonymizeManyValues checks tokens stay right across many values and
// batches (the pseudonym cache, when it fills, must not change tokens).
func TestAnonymizeManyValues(t *testing.T) {
	spec := testSpec(t, false)
	keys := testKeys()
	a, _ := NewAnonymize(spec, keys)
	ref, _ := NewAnonymize(spec, keys)
	for batch := range 4 {
		evs, rows := genEvents(t, uint64(batch), 3000, 200_000)
		b := anonymizeRows(t, spec, a, rows...)
		for i := range evs {
			want := string(ref.Clone().pseudonymize(evs[i].UserID))
			if got := colString(t, b, spec, "user_id", i); got != want {
				t.Fatalf("batch %d row %d: token %s, want %s", batch, i, got, want)
			}
			if got := colString(t, b, spec, "phone", i); !strings.HasSuffix(got, evs[i].Phone[len(evs[i].Phone)-4:]) || strings.Contains(got, evs[i].Phone) {
				t.Fatalf("row %d: phone %q", i, got)
			}
		}
	}
}

func TestEncryptDLQ(t *testing.T) {
	spec := testSpec(t, false)
	keys := testKeys()
	a, _ := NewAnonymize(spec, keys)
	msg := &pipeline.Message{Key: []byte("user-key-alice"), Value: []byte(`{"email":"alice@example.com"`)}
	value, key, hdrs, err := a.EncryptDLQ(nil, msg)
	if err != nil {
		t.Fatal(err)
	}
	if key != nil {
		t.Errorf("DLQ record has a key %q", key)
	}
	all := string(value)
	for _, h := range hdrs {
		all += h.Key + string(h.Value)
	}
	for _, plain := range []string{"alice", "user-key", string(keys.AES), hex.EncodeToString(keys.AES)} {
		if strings.Contains(all, plain) {
			t.Errorf("DLQ record holds %q", plain)
		}
	}
	hv := map[string]string{}
	for _, h := range hdrs {
		hv[h.Key] = string(h.Value)
	}
	if hv[pipeline.HeaderKeyID] != keys.AESKeyID {
		t.Errorf("key id header %q", hv[pipeline.HeaderKeyID])
	}
	got, err := Decrypt(keys.AES, string(value), []byte(DLQAssociatedData))
	if err != nil || !bytes.Equal(got, msg.Value) {
		t.Errorf("value round trip: %q, %v", got, err)
	}
	gotKey, err := Decrypt(keys.AES, hv[HeaderEncryptedKey], []byte(DLQAssociatedData))
	if err != nil || !bytes.Equal(gotKey, msg.Key) {
		t.Errorf("key round trip: %q, %v", gotKey, err)
	}
	if _, err := Decrypt(keys.AES, string(value), []byte("email")); err == nil {
		t.Error("DLQ payload decrypts with a field's associated data")
	}
	// no input key: no encrypted key header
	_, _, hdrs, err = a.EncryptDLQ(nil, &pipeline.Message{Value: []byte("x")})
	if err != nil || len(hdrs) != 1 {
		t.Errorf("keyless DLQ: headers %v, %v", hdrs, err)
	}
	// no AES key: an error, never plaintext
	noAES, _ := NewAnonymize(parseTestSpec(t, false, map[string]string{"{field: email, op: encrypt}": "{field: email, op: redact}"}), Keys{HMAC: keys.HMAC})
	if v, _, _, err := noAES.EncryptDLQ(nil, msg); err == nil || v != nil {
		t.Errorf("EncryptDLQ without key: %q, %v", v, err)
	}
}

func TestLoadKeys(t *testing.T) {
	hexKey := strings.Repeat("ab", 32)
	t.Setenv("UNIT_HMAC_KEY", "  hmac-secret\n")
	t.Setenv("UNIT_AES_KEY", hexKey)
	spec := testSpec(t, false)
	k, err := LoadKeys(&spec.Stages.Anonymize)
	if err != nil {
		t.Fatal(err)
	}
	if string(k.HMAC) != "hmac-secret" || hex.EncodeToString(k.AES) != hexKey || k.AESKeyID != "unit-key-1" {
		t.Errorf("keys %+v", k)
	}

	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	b64 := write("aes.b64", "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=\n")
	cases := []struct {
		name    string
		an      pipeline.AnonymizeSpec
		wantErr string // "" = ok
	}{
		{"unset env", pipeline.AnonymizeSpec{HMACKeyEnv: "UNIT_UNSET_VAR"}, "UNIT_UNSET_VAR"},
		{"empty env", pipeline.AnonymizeSpec{HMACKeyEnv: "UNIT_EMPTY_VAR"}, "UNIT_EMPTY_VAR"},
		{"missing file", pipeline.AnonymizeSpec{HMACKeyFile: filepath.Join(dir, "nope")}, "nope"},
		{"empty file", pipeline.AnonymizeSpec{HMACKeyFile: write("empty", " \n")}, "empty"},
		{"file key", pipeline.AnonymizeSpec{HMACKeyFile: write("hmac", "k\n")}, ""},
		{"base64 AES file", pipeline.AnonymizeSpec{EncryptionKeyFile: b64}, ""},
		{"short AES key", pipeline.AnonymizeSpec{EncryptionKeyFile: write("short", "abcd")}, "encryption key"},
		{"AES env unset", pipeline.AnonymizeSpec{EncryptionKeyEnv: "UNIT_UNSET_AES"}, "UNIT_UNSET_AES"},
	}
	t.Setenv("UNIT_EMPTY_VAR", "  ")
	for _, tc := range cases {
		_, err := LoadKeys(&tc.an)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want one naming %q", tc.name, err, tc.wantErr)
		}
	}
	k, _ = LoadKeys(&pipeline.AnonymizeSpec{EncryptionKeyFile: b64})
	if !bytes.Equal(k.AES, bytes.Repeat([]byte{'B'}, 32)) {
		t.Errorf("base64 key decoded to %x", k.AES)
	}
}

func TestNewAnonymizeNeedsKeys(t *testing.T) {
	spec := testSpec(t, false)
	if _, err := NewAnonymize(spec, Keys{AES: testKeys().AES}); err == nil || !strings.Contains(err.Error(), "user_id") {
		t.Errorf("no hmac key: %v", err)
	}
	if _, err := NewAnonymize(spec, Keys{HMAC: []byte("k")}); err == nil || !strings.Contains(err.Error(), "email") {
		t.Errorf("no aes key: %v", err)
	}
	if _, err := NewAnonymize(spec, Keys{HMAC: []byte("k"), AES: []byte("short")}); err == nil {
		t.Error("short aes key accepted")
	}
}

func TestAnonymizeAllRowsRejected(t *testing.T) {
	spec := testSpec(t, false)
	a, _ := NewAnonymize(spec, testKeys())
	b := newBatch(0, []byte("{"), []byte("[]"))
	mustProcess(t, b, NewDecode(spec), a)
	if err := a.Process(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// TestAppendMaskedASCIIMatchesAppendMasked checks the ASCII fast path of the
// mask operator against appendMasked: lengths around keep_last and around
// the star run's length, keep 0, non-ASCII and invalid UTF-8.
func TestAppendMaskedASCIIMatchesAppendMasked(t *testing.T) {
	vals := []string{"", "1", "1234", "12345", "+1-555-123-4567", "été", "ab\xffcd", "x\u00e9yz1234"}
	for _, n := range []int{63, 64, 65, 66, 127, 128, 129, 200} {
		vals = append(vals, strings.Repeat("7", n))
	}
	for _, v := range vals {
		for _, keep := range []int{0, 1, 4, 5, 70, 300} {
			got, want := appendMaskedASCII([]byte("p"), v, keep), appendMasked([]byte("p"), v, keep)
			if string(got) != string(want) {
				t.Fatalf("%q keep %d: %q, want %q", v, keep, got, want)
			}
		}
	}
}
