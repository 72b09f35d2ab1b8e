package models

import "math"

// classDist is a class → weight map with the semantics of the Python dicts
// River's trees keep: a class has a key once it has been added (even with
// weight 0), and every sum, argmax and normalization walks the keys in the
// order they were inserted. Following that order is what makes driftline's
// trees take River's split decisions bit for bit.
type classDist struct {
	w     []float64 // by class; 0 for a class without a key
	order []int32   // the classes with a key, in insertion order
}

func newClassDist(k int) classDist {
	return classDist{w: make([]float64, k), order: make([]int32, 0, k)}
}

func (d *classDist) has(c int32) bool {
	for _, o := range d.order {
		if o == c {
			return true
		}
	}
	return false
}

// add adds w to class c, giving c a key first if it has none.
func (d *classDist) add(c int32, w float64) {
	if !d.has(c) {
		d.order = append(d.order, c)
	}
	d.w[c] += w
}

// set gives class c the weight w, giving it a key first if it has none.
func (d *classDist) set(c int32, w float64) {
	if !d.has(c) {
		d.order = append(d.order, c)
	}
	d.w[c] = w
}

func (d *classDist) reset() {
	for _, c := range d.order {
		d.w[c] = 0
	}
	d.order = d.order[:0]
}

func (d *classDist) copyFrom(src *classDist) {
	d.reset()
	for _, c := range src.order {
		d.order = append(d.order, c)
		d.w[c] = src.w[c]
	}
}

func (d *classDist) clone() classDist {
	c := newClassDist(len(d.w))
	c.copyFrom(d)
	return c
}

// total is sum(d.values()).
func (d *classDist) total() float64 {
	s := 0.0
	for _, c := range d.order {
		s += d.w[c]
	}
	return s
}

// maxWeight is max(d.values()); 0 without keys.
func (d *classDist) maxWeight() float64 {
	m := math.Inf(-1)
	for _, c := range d.order {
		m = max(m, d.w[c])
	}
	if len(d.order) == 0 {
		return 0
	}
	return m
}

// argmax is max(d, key=d.get): the first class of greatest weight in key
// order, or −1 without keys.
func (d *classDist) argmax() int32 {
	best := int32(-1)
	for _, c := range d.order {
		if best < 0 || d.w[c] > d.w[best] {
			best = c
		}
	}
	return best
}

// nonZero counts the classes of non-zero weight, up to 2.
func (d *classDist) nonZero() int {
	n := 0
	for _, c := range d.order {
		if d.w[c] != 0 {
			n++
			if n == 2 {
				break
			}
		}
	}
	return n
}

// normalizeInto is River's normalize_values_in_dict(d, factor, inplace=False)
// written into the class-indexed dst (classes without a key get 0): each
// weight times 1/factor, or the weights unchanged when factor is 0 or NaN.
// A factor ≤ −1 means the default, the sum of the weights.
func (d *classDist) normalizeInto(dst []float64, factor float64) {
	if factor <= -1 {
		factor = d.total()
	}
	clear(dst)
	if factor == 0 || math.IsNaN(factor) {
		for _, c := range d.order {
			dst[c] = d.w[c]
		}
		return
	}
	scale := 1 / factor
	for _, c := range d.order {
		dst[c] = d.w[c] * scale
	}
}

// entropy is River's InfoGainSplitCriterion._compute_entropy_dict.
func (d *classDist) entropy() float64 {
	entropy, sum := 0.0, 0.0
	for _, c := range d.order {
		if v := d.w[c]; v > 0 {
			entropy -= v * math.Log2(v)
			sum += v
		}
	}
	if sum > 0 {
		return (entropy + sum*math.Log2(sum)) / sum
	}
	return 0
}

// gini is River's GiniSplitCriterion.compute_gini.
func (d *classDist) gini(sum float64) float64 {
	g := 1.0
	if sum != 0 {
		for _, c := range d.order {
			f := d.w[c] / sum
			g -= f * f
		}
	}
	return g
}

// runningMean is River's stats.Mean: a weighted mean updated in place.
type runningMean struct{ n, mean float64 }

func (m *runningMean) update(x, w float64) {
	m.n += w
	m.mean += (w / m.n) * (x - m.mean)
}

// runningVar is River's stats.Var (ddof 1, Welford's algorithm), with the
// parallel merge and removal of Chan et al. that River's regression
// splitters use.
type runningVar struct{ n, mean, s float64 }

func (v *runningVar) update(x, w float64) {
	old := v.mean
	v.n += w
	v.mean += (w / v.n) * (x - v.mean)
	v.s += w * (x - old) * (x - v.mean)
}

// variance is Var.get(): S/(n−1), or 0 for n ≤ 1.
func (v *runningVar) variance() float64 {
	if v.n > 1 {
		return v.s / (v.n - 1)
	}
	return 0
}

// add is Var.__iadd__.
func (v *runningVar) add(o runningVar) {
	d := v.mean - o.mean
	s := v.s + o.s + d*d*v.n*o.n/(v.n+o.n)
	oldN := v.n
	v.n += o.n
	v.mean = (oldN*v.mean + o.n*o.mean) / v.n
	v.s = s
}

// sub is Var.__isub__.
func (v *runningVar) sub(o runningVar) {
	oldN := v.n
	v.n -= o.n
	if v.n > 0 {
		v.mean = (oldN*v.mean - o.n*o.mean) / v.n
	} else {
		v.n, v.mean = 0, 0
	}
	d := v.mean - o.mean
	v.s = v.s - o.s - d*d*v.n*o.n/(v.n+o.n)
}
