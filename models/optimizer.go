package models

import "math"

// learningRate is the current row's η: SGD's schedule at t = steps, or the
// fixed rate of AdaGrad (FTRL ignores it).
func (l *Linear) learningRate() float64 {
	o := &l.cfg.Optimizer
	if o.Kind != OptimizerSGD {
		return o.LearningRate
	}
	t := float64(l.steps)
	switch o.Schedule {
	case ScheduleInverseScaling:
		return o.LearningRate / math.Pow(t+1, o.PowerT)
	case ScheduleOptimal:
		return 1 / (o.ScheduleAlpha * (l.t0 + t))
	}
	return o.LearningRate
}

// optimalT0 is ScheduleOptimal's offset, by Bottou's heuristic as in River
// and scikit-learn: a typical weight typw = √(1/√α) gives the first rate
// η0 = typw / max(1, |loss'(−typw, y=1)|), and t0 = 1/(α·η0).
func optimalT0(link Link, alpha float64) float64 {
	typw := math.Sqrt(1 / math.Sqrt(alpha))
	var dloss float64
	switch link {
	case LinkIdentity:
		dloss = -typw - 1 // squared loss: p − y
	default:
		dloss = sigmoid(-typw) - 1 // log loss: σ(p) − y
	}
	eta0 := typw / max(1, math.Abs(dloss))
	return 1 / (alpha * eta0)
}

// step updates one coordinate: the weight *w, with optimizer state at index
// s, given the loss gradient g with respect to it. Regularized coordinates
// (weights, not intercepts) get L1 and L2. The stored weight is clamped to
// the finite float32 range.
func (l *Linear) step(w *float32, s int, g, eta float64, regularized bool) {
	wv := float64(*w)
	l1, l2 := 0.0, 0.0
	if regularized {
		l1, l2 = l.cfg.L1, l.cfg.L2
	}
	switch l.cfg.Optimizer.Kind {
	case OptimizerSGD:
		wv -= eta * (g + l2*wv)
	case OptimizerAdaGrad:
		g += l2 * wv
		l.acc[s] += g * g
		wv -= eta * g / math.Sqrt(l.acc[s]+l.cfg.Optimizer.Epsilon)
	case OptimizerFTRL:
		alpha := l.cfg.Optimizer.LearningRate
		n := l.acc[s]
		nNext := n + g*g
		sigma := (math.Sqrt(nNext) - math.Sqrt(n)) / alpha
		l.z[s] += g - sigma*wv
		l.acc[s] = nNext
		wv = ftrlWeight(l.z[s], nNext, alpha, l.cfg.Optimizer.Beta, l1, l2)
	}
	*w = clampFloat32(wv)
}

// ftrlWeight is FTRL-Proximal's closed-form weight for state z and n:
// 0 when |z| ≤ λ1, else −(z − sgn(z)·λ1) / ((β+√n)/α + λ2).
func ftrlWeight(z, n, alpha, beta, l1, l2 float64) float64 {
	if math.Abs(z) <= l1 {
		return 0
	}
	return -(z - math.Copysign(l1, z)) / ((beta+math.Sqrt(n))/alpha + l2)
}
