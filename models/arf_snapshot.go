package models

import (
	"github.com/driftline/driftline/detectors"
	"github.com/driftline/driftline/models/internal/pyrand"
)

// Snapshot kind and version of an ARFClassifier.
const (
	arfMagic   = "DLAF"
	arfVersion = 1
)

func encodeARFConfig(e *encoder, c *ARFConfig) {
	encodeTreeConfig(e, &c.HoeffdingTreeConfig)
	e.int(c.Models)
	e.blob([]byte(c.MaxFeatures))
	for _, v := range []float64{c.Lambda, c.WarningDelta, c.DriftDelta} {
		e.f64(v)
	}
	for _, v := range []bool{c.DisableWeightedVote, c.NoWarning, c.NoDrift} {
		e.bool(v)
	}
	e.u64(c.Seed)
}

func decodeARFConfig(d *decoder) ARFConfig {
	c := ARFConfig{HoeffdingTreeConfig: decodeTreeConfig(d)}
	c.Models = d.int()
	c.MaxFeatures = string(d.blob())
	for _, p := range []*float64{&c.Lambda, &c.WarningDelta, &c.DriftDelta} {
		*p = d.f64()
	}
	for _, p := range []*bool{&c.DisableWeightedVote, &c.NoWarning, &c.NoDrift} {
		*p = d.bool()
	}
	c.Seed = d.u64()
	return c
}

// encodeDetector writes an ADWIN's state, length-prefixed.
func encodeDetector(e *encoder, a *detectors.ADWIN) {
	state, _ := a.AppendBinary(nil)
	e.blob(state)
}

func decodeDetector(d *decoder) *detectors.ADWIN {
	state := d.blob()
	if d.err != nil {
		return nil
	}
	a, rest, err := detectors.ReadADWIN(state)
	if err != nil || len(rest) != 0 {
		d.fail("bad ADWIN state")
		return nil
	}
	return a
}

// MarshalBinary snapshots the forest, its random source included; see
// Learner.
func (a *ARFClassifier) MarshalBinary() ([]byte, error) {
	e := &encoder{}
	encodeARFConfig(e, &a.cfg)
	f := a.f
	e.b = f.rng.AppendState(e.b)
	e.bool(f.started)
	for i := range f.trees {
		e.f64(f.correct[i])
		e.f64(f.seen[i])
		e.int(f.warnings[i])
		e.int(f.drifts[i])
		encodeDetector(e, f.warn[i])
		encodeDetector(e, f.drift[i])
		for _, t := range []*ctree{f.trees[i], f.background[i]} {
			e.bool(t != nil)
			if t != nil {
				t.encode(e)
			}
		}
	}
	return appendFrame(arfMagic, arfVersion, e.b), nil
}

// UnmarshalBinary replaces the forest with a snapshot; see Learner.
func (a *ARFClassifier) UnmarshalBinary(data []byte) error {
	r, err := unmarshalARF(data)
	if err != nil {
		return err
	}
	*a = *r
	a.f.sc = newTreeScratch(&a.p)
	for _, t := range append(append([]*ctree(nil), a.f.trees...), a.f.background...) {
		if t != nil {
			t.p, t.sc = &a.p, a.f.sc
		}
	}
	return nil
}

func unmarshalARF(data []byte) (*ARFClassifier, error) {
	body, err := openFrame(data, arfMagic, arfVersion)
	if err != nil {
		return nil, err
	}
	d := &decoder{snapshotReader{buf: body}}
	cfg := decodeARFConfig(d)
	if d.err != nil {
		return nil, d.err
	}
	a, err := NewARFClassifier(cfg)
	if err != nil {
		return nil, snapshotConfigError(err)
	}
	if a.cfg != cfg {
		return nil, snapshotConfigError(nil)
	}
	f := a.f
	if err := f.rng.SetState(d.take(pyrand.StateSize)); err != nil && d.err == nil {
		d.fail("bad random state")
	}
	f.started = d.bool()
	for i := range f.trees {
		f.correct[i], f.seen[i] = d.f64(), d.f64()
		f.warnings[i], f.drifts[i] = d.int(), d.int()
		f.warn[i], f.drift[i] = decodeDetector(d), decodeDetector(d)
		for _, slot := range []**ctree{&f.trees[i], &f.background[i]} {
			if d.bool() {
				t := a.newMember()
				t.decode(d)
				*slot = t
			}
		}
		if d.err == nil && f.started != (f.trees[i] != nil) {
			d.fail("tree %d does not match the forest's state", i)
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	return a, nil
}
