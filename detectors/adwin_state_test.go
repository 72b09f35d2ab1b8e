package detectors

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// TestADWINStateRoundTrip checks that a clone and a restored snapshot behave
// exactly like the original on the rest of a drifting stream.
func TestADWINStateRoundTrip(t *testing.T) {
	d, err := NewADWIN(DefaultADWINConfig())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		p := 0.2
		if i > 1500 {
			p = 0.6
		}
		x := 0.0
		if rng.Float64() < p {
			x = 1
		}
		d.Update(x)
	}
	state, err := d.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	restored := &ADWIN{}
	if err := restored.UnmarshalBinary(state); err != nil {
		t.Fatal(err)
	}
	clone := d.Clone()
	drifts := 0
	for i := range 5000 {
		x := rng.Float64()
		if i > 2500 {
			x += 0.5
		}
		d.Update(x)
		restored.Update(x)
		clone.Update(x)
		if d.DriftDetected() {
			drifts++
		}
		if restored.DriftDetected() != d.DriftDetected() || clone.DriftDetected() != d.DriftDetected() ||
			restored.Estimation() != d.Estimation() || clone.Estimation() != d.Estimation() || restored.Width() != d.Width() {
			t.Fatalf("update %d: restored or cloned detector diverged", i)
		}
	}
	if drifts == 0 {
		t.Fatal("the stream's shift gave no drift; the test checks nothing")
	}
	a, _ := d.AppendBinary(nil)
	b, _ := restored.AppendBinary(nil)
	if !bytes.Equal(a, b) {
		t.Fatal("equal detectors give different state bytes")
	}
	before, _ := restored.AppendBinary(nil)
	for _, bad := range [][]byte{nil, state[:len(state)-1], append(append([]byte(nil), state...), 0), {9}} {
		if err := restored.UnmarshalBinary(bad); !errors.Is(err, ErrState) {
			t.Fatalf("bad state of %d bytes: error %v, want ErrState", len(bad), err)
		}
	}
	after, _ := restored.AppendBinary(nil)
	if !bytes.Equal(before, after) {
		t.Fatal("a rejected state changed the detector")
	}
}
