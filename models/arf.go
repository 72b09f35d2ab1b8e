package models

import (
	"github.com/driftline/driftline/detectors"
	"github.com/driftline/driftline/models/internal/pyrand"
)

// ARFClassifier is the Adaptive Random Forest of Gomes et al.: Models
// Hoeffding trees trained by online bagging — each row is learned by each
// tree with a Poisson(Lambda) weight — whose leaves each watch a random
// subspace of MaxFeatures attributes. Each tree has an ADWIN warning
// detector on its errors, whose alarm starts a background tree, and an
// ADWIN drift detector, whose alarm replaces the tree by its background
// tree (or a new one). A prediction is the trees' probabilities, each
// weighted by the tree's prequential accuracy (unless DisableWeightedVote),
// normalized.
//
// It implements River 0.26.1's forest.ARFClassifier step for step, with
// River's random numbers: one CPython-compatible Mersenne Twister seeded
// with Seed draws the bagging weights and the subspaces, in River's order,
// so the same seed gives River's forest. A leaf's subspace is drawn from
// the attributes present in the first row it observes (dense columns, then
// hash buckets: River's sorted(x)); the subspace size comes from the
// configured row shape (River's from the first row). Attributes, missing
// values and outputs are as HoeffdingTreeClassifier documents. It
// implements ShapedLearner; Learner states the contract.
//
// Reference: H. M. Gomes, A. Bifet, J. Read, J. P. Barddal, F. Enembreck,
// B. Pfahringer, G. Holmes and T. Abdessalem, "Adaptive random forests for
// evolving data stream classification", Machine Learning 106, 2017.
type ARFClassifier struct {
	cfg ARFConfig // resolved
	p   treeParams
	f   *forest
}

var _ ShapedLearner = (*ARFClassifier)(nil)

// forest is the state of an ARFClassifier.
type forest struct {
	trees, background []*ctree
	warn, drift       []*detectors.ADWIN
	correct, seen     []float64 // each tree's prequential accuracy
	warnings, drifts  []int
	started           bool // River's ensemble is built (at the first row)
	maxFeatures       int
	rng               *pyrand.Source
	sc                *treeScratch
	// warnTemplate and driftTemplate are empty detectors to clone.
	warnTemplate, driftTemplate *detectors.ADWIN
}

// NewARFClassifier returns an empty forest for cfg, after applying its
// defaults and validating it.
func NewARFClassifier(cfg ARFConfig) (*ARFClassifier, error) {
	rc, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	a := &ARFClassifier{cfg: rc, p: newTreeParams(rc.HoeffdingTreeConfig)}
	m, _ := subspaceSize(rc.MaxFeatures, rc.NumDense+rc.NumHashed)
	n := rc.Models
	f := &forest{
		trees: make([]*ctree, n), background: make([]*ctree, n),
		warn: make([]*detectors.ADWIN, n), drift: make([]*detectors.ADWIN, n),
		correct: make([]float64, n), seen: make([]float64, n), warnings: make([]int, n), drifts: make([]int, n),
		maxFeatures: m, rng: pyrand.New(rc.Seed), sc: newTreeScratch(&a.p),
	}
	if f.warnTemplate, err = newADWINWithDelta(rc.WarningDelta); err != nil {
		return nil, err
	}
	if f.driftTemplate, err = newADWINWithDelta(rc.DriftDelta); err != nil {
		return nil, err
	}
	for i := range n {
		f.warn[i], f.drift[i] = f.warnTemplate.Clone(), f.driftTemplate.Clone()
	}
	a.f = f
	return a, nil
}

func newADWINWithDelta(delta float64) (*detectors.ADWIN, error) {
	c := detectors.DefaultADWINConfig()
	c.Delta = delta
	return detectors.NewADWIN(c)
}

// newMember is River's _new_base_model: an empty tree whose leaves draw
// their subspaces from the forest's random numbers.
func (a *ARFClassifier) newMember() *ctree {
	t := newCTree(&a.p, a.f.sc)
	t.rng = a.f.rng
	t.randomSubspace = true
	t.maxFeatures = a.f.maxFeatures
	return t
}

// Config returns the configuration with its defaults applied.
func (a *ARFClassifier) Config() ARFConfig { return a.cfg }

// Classes is 1 (P(y=1)) for a binary forest, else K.
func (a *ARFClassifier) Classes() int { return classifierOutputs(a.p.k) }

// Link is LinkSigmoid for a binary forest, else LinkSoftmax.
func (a *ARFClassifier) Link() Link { return classifierLink(a.p.k) }

// Shape is the layout of the rows the forest takes.
func (a *ARFClassifier) Shape() Shape {
	return Shape{NumDense: a.p.nd, NumHashed: a.p.nh, HashBits: a.p.bits}
}

// Predict writes rows.N×Classes() outputs into dst; see Learner.
func (a *ARFClassifier) Predict(dst []float32, rows *Rows) error {
	return predictRows(a, dst, rows, a.f.sc, a.predictProba)
}

// Learn updates the forest with rows and labels y (class indices); see
// Learner.
func (a *ARFClassifier) Learn(rows *Rows, y []float32) error {
	return learnRows(a, rows, y, a.p.k, a.f.sc, a.learnOne)
}

// accuracy is tree i's prequential accuracy (River's Accuracy.get()).
func (f *forest) accuracy(i int) float64 {
	if f.seen[i] == 0 {
		return 0
	}
	return f.correct[i] / f.seen[i]
}

// learnOne is River's BaseForest.learn_one for a classifier.
func (a *ARFClassifier) learnOne(r *treeRow, y int32) {
	f := a.f
	if !f.started {
		for i := range f.trees {
			f.trees[i] = a.newMember()
		}
		f.started = true
	}
	for i, t := range f.trees {
		pred := t.predictOne(r)
		f.seen[i]++
		if pred == y {
			f.correct[i]++
		}
		k := f.rng.Poisson(a.cfg.Lambda)
		if k <= 0 {
			continue
		}
		w := float64(k)
		if !a.cfg.NoWarning && f.background[i] != nil {
			f.background[i].learnOne(r, y, w)
		}
		t.learnOne(r, y, w)
		e := 1.0
		if pred == y {
			e = 0
		}
		if !a.cfg.NoWarning {
			f.warn[i].Update(e)
			if f.warn[i].DriftDetected() {
				f.background[i] = a.newMember()
				f.warn[i] = f.warnTemplate.Clone()
				f.warnings[i]++
			}
		}
		if !a.cfg.NoDrift {
			f.drift[i].Update(e)
			if f.drift[i].DriftDetected() {
				if !a.cfg.NoWarning && f.background[i] != nil {
					f.trees[i] = f.background[i]
					f.background[i] = nil
					f.warn[i] = f.warnTemplate.Clone()
				} else {
					f.trees[i] = a.newMember()
				}
				f.drift[i] = f.driftTemplate.Clone()
				f.correct[i], f.seen[i] = 0, 0
				f.drifts[i]++
			}
		}
	}
}

// predictProba is River's ARFClassifier.predict_proba_one into the
// class-indexed out.
func (a *ARFClassifier) predictProba(r *treeRow, out []float64) {
	clear(out)
	f := a.f
	if !f.started {
		return
	}
	tmp := f.sc.dist2()
	for i, t := range f.trees {
		t.predictProba(r, tmp)
		m := f.accuracy(i)
		weighted := !a.cfg.DisableWeightedVote && m > 0
		for c, seen := range t.classes {
			if !seen {
				continue
			}
			v := tmp[c]
			if weighted {
				v *= m
			}
			out[c] += v
		}
	}
	total := 0.0
	for _, v := range out {
		total += v
	}
	if total > 0 {
		for c := range out {
			out[c] /= total
		}
	}
}

// Clone returns an independent deep copy.
func (a *ARFClassifier) Clone() Learner {
	c := &ARFClassifier{cfg: a.cfg, p: a.p}
	f := *a.f
	rng := *a.f.rng
	f.rng = &rng
	f.sc = newTreeScratch(&c.p)
	cloneTree := func(t *ctree) *ctree {
		if t == nil {
			return nil
		}
		return t.clone(&c.p, f.sc, f.rng)
	}
	f.trees, f.background = make([]*ctree, len(a.f.trees)), make([]*ctree, len(a.f.trees))
	f.warn, f.drift = make([]*detectors.ADWIN, len(a.f.trees)), make([]*detectors.ADWIN, len(a.f.trees))
	for i := range a.f.trees {
		f.trees[i], f.background[i] = cloneTree(a.f.trees[i]), cloneTree(a.f.background[i])
		f.warn[i], f.drift[i] = a.f.warn[i].Clone(), a.f.drift[i].Clone()
	}
	f.correct, f.seen = append([]float64(nil), a.f.correct...), append([]float64(nil), a.f.seen...)
	f.warnings, f.drifts = append([]int(nil), a.f.warnings...), append([]int(nil), a.f.drifts...)
	c.f = &f
	return c
}
