package rollout

// Progress reports how far the current step is: done is the candidate
// outcomes counted toward it, of needed. In shadow and in a canary step a
// step needs MinSamples new candidate outcomes (and both arms MinSamples in
// all) before it can advance; in the promoted phase the bake needs
// BakeSamples. A finished rollout reports 0 of 0. The counts are as of the
// last Evaluate.
func (c *Controller) Progress() (done, needed int64) {
	switch c.phase {
	case PhaseShadow, PhaseCanary:
		needed = int64(c.gate.MinSamples)
	case PhasePromoted:
		needed = int64(c.gate.BakeSamples)
	default:
		return 0, 0
	}
	return max(0, c.lastN-c.stepStart), needed
}
