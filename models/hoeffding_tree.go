package models

import "fmt"

// HoeffdingTreeClassifier is the Hoeffding tree, or Very Fast Decision Tree
// (VFDT), of Domingos & Hulten: an incremental decision tree that splits a
// leaf once the Hoeffding bound says, with confidence 1 − Delta, that its
// best attribute beats the second best. It implements River 0.26.1's
// tree.HoeffdingTreeClassifier (after MOA) step for step — Gaussian
// observers with 10 candidate thresholds for numeric attributes, nominal
// observers, info-gain or Gini merit, the tie threshold Tau, merit
// pre-pruning, MaxShareToSplit, majority-class, naive-Bayes or adaptive
// naive-Bayes leaves, and River's memory manager — so that on the same
// rows it takes River's split decisions and predicts River's
// probabilities. It implements ShapedLearner; Learner states the contract.
//
// Attributes. Dense column j is numeric attribute j; a NaN or ±Inf value is
// missing (River: the key is absent from x): the observers skip it, and at
// a split on that column the row follows the heavier child (River's most
// common path), where it is learned without a split attempt. Each hash
// bucket is a nominal attribute with the values absent and present —
// River's view of a one-hot column given in full with the column listed in
// nominal_attributes — so a split on a bucket is two-way, and the order of
// a row's hashed indices never matters. Observers exist only for the
// buckets a leaf has seen present; the absent counts follow from the
// leaf's counts. River would, on one degenerate point, do otherwise: when
// every candidate's merit is −Inf and the tie threshold forces a split,
// River may split on a nominal attribute with one value, where driftline
// deactivates the leaf.
//
// Outputs. P(y=1) for two classes (LinkSigmoid), the K probabilities for
// more (LinkSoftmax). Where River predicts nothing (no label learned yet,
// or a leaf without weight), the output is the uniform distribution.
//
// Learn and Predict do not allocate per row except when the tree grows (a
// new observer, a split). Predict never allocates.
//
// Reference: P. Domingos and G. Hulten, "Mining high-speed data streams",
// KDD 2000. G. Hulten, L. Spencer and P. Domingos, "Mining time-changing
// data streams", KDD 2001. A. Bifet, G. Holmes, R. Kirkby and
// B. Pfahringer, "MOA: Massive Online Analysis", JMLR 11, 2010.
type HoeffdingTreeClassifier struct {
	cfg HoeffdingTreeConfig // resolved
	p   treeParams
	t   *ctree
}

var _ ShapedLearner = (*HoeffdingTreeClassifier)(nil)

// NewHoeffdingTreeClassifier returns an empty tree for cfg, after applying
// its defaults and validating it.
func NewHoeffdingTreeClassifier(cfg HoeffdingTreeConfig) (*HoeffdingTreeClassifier, error) {
	rc, err := cfg.resolve(htDefaults)
	if err != nil {
		return nil, err
	}
	h := &HoeffdingTreeClassifier{cfg: rc, p: newTreeParams(rc)}
	h.t = newCTree(&h.p, newTreeScratch(&h.p))
	return h, nil
}

// Config returns the configuration with its defaults applied.
func (h *HoeffdingTreeClassifier) Config() HoeffdingTreeConfig { return h.cfg }

// Classes is 1 (P(y=1)) for a binary tree, else K.
func (h *HoeffdingTreeClassifier) Classes() int { return classifierOutputs(h.p.k) }

// Link is LinkSigmoid for a binary tree, else LinkSoftmax.
func (h *HoeffdingTreeClassifier) Link() Link { return classifierLink(h.p.k) }

// Shape is the layout of the rows the tree takes.
func (h *HoeffdingTreeClassifier) Shape() Shape {
	return Shape{NumDense: h.p.nd, NumHashed: h.p.nh, HashBits: h.p.bits}
}

// Predict writes rows.N×Classes() outputs into dst; see Learner.
func (h *HoeffdingTreeClassifier) Predict(dst []float32, rows *Rows) error {
	return predictRows(h, dst, rows, h.t.sc, func(r *treeRow, proba []float64) { h.t.predictProba(r, proba) })
}

// Learn updates the tree with rows and labels y (class indices); see
// Learner.
func (h *HoeffdingTreeClassifier) Learn(rows *Rows, y []float32) error {
	return learnRows(h, rows, y, h.p.k, h.t.sc, func(r *treeRow, c int32) { h.t.learnOne(r, c, 1) })
}

// Clone returns an independent deep copy.
func (h *HoeffdingTreeClassifier) Clone() Learner {
	c := &HoeffdingTreeClassifier{cfg: h.cfg, p: h.p}
	c.t = h.t.clone(&c.p, newTreeScratch(&c.p), nil)
	return c
}

// predictRows runs predict on each row of rows and writes the outputs.
func predictRows(l ShapedLearner, dst []float32, rows *Rows, sc *treeScratch, predict func(*treeRow, []float64)) error {
	sh := l.Shape()
	if err := checkRowsFit(rows, sh); err != nil {
		return err
	}
	k := l.Classes()
	if len(dst) != rows.N*k {
		return fmt.Errorf("predict destination holds %d values, want %d: %w", len(dst), rows.N*k, ErrShape)
	}
	for i := range rows.N {
		sc.row.load(rows.DenseRow(i), rows.HashedRow(i), sh.HashBits)
		predict(&sc.row, sc.dist)
		writeProba(dst[i*k:(i+1)*k], sc.dist)
	}
	return nil
}

// learnRows runs learn on each row of rows with a valid class label, and
// reports the rows it skipped.
func learnRows(l ShapedLearner, rows *Rows, y []float32, classes int, sc *treeScratch, learn func(*treeRow, int32)) error {
	sh := l.Shape()
	if err := checkRowsFit(rows, sh); err != nil {
		return err
	}
	if len(y) != rows.N {
		return fmt.Errorf("learn got %d labels for %d rows: %w", len(y), rows.N, ErrShape)
	}
	skipped, first := 0, -1
	for i := range rows.N {
		c, ok := classLabel(y[i], classes)
		if !ok {
			if skipped == 0 {
				first = i
			}
			skipped++
			continue
		}
		sc.row.load(rows.DenseRow(i), rows.HashedRow(i), sh.HashBits)
		learn(&sc.row, c)
	}
	if skipped > 0 {
		return skippedLabels(skipped, rows.N, first, y[first], l.Link())
	}
	return nil
}

// Snapshot kind and version of a HoeffdingTreeClassifier.
const (
	htMagic   = "DLHT"
	htVersion = 1
)

// MarshalBinary snapshots the tree; see Learner.
func (h *HoeffdingTreeClassifier) MarshalBinary() ([]byte, error) {
	e := &encoder{}
	encodeTreeConfig(e, &h.cfg)
	h.t.encode(e)
	return appendFrame(htMagic, htVersion, e.b), nil
}

// UnmarshalBinary replaces the tree with a snapshot; see Learner.
func (h *HoeffdingTreeClassifier) UnmarshalBinary(data []byte) error {
	r, err := unmarshalHoeffdingTree(data)
	if err != nil {
		return err
	}
	*h = *r
	h.t.p = &h.p
	return nil
}

func unmarshalHoeffdingTree(data []byte) (*HoeffdingTreeClassifier, error) {
	body, err := openFrame(data, htMagic, htVersion)
	if err != nil {
		return nil, err
	}
	d := &decoder{snapshotReader{buf: body}}
	cfg := decodeTreeConfig(d)
	if d.err != nil {
		return nil, d.err
	}
	h, err := newFromSnapshotConfig(cfg)
	if err != nil {
		return nil, err
	}
	h.t.decode(d)
	if err := d.done(); err != nil {
		return nil, err
	}
	return h, nil
}

// newFromSnapshotConfig builds an empty tree for a configuration read from a
// snapshot, which must be complete (defaults applied) and valid.
func newFromSnapshotConfig(cfg HoeffdingTreeConfig) (*HoeffdingTreeClassifier, error) {
	h, err := NewHoeffdingTreeClassifier(cfg)
	if err != nil {
		return nil, snapshotConfigError(err)
	}
	if h.cfg != cfg {
		return nil, snapshotConfigError(nil)
	}
	return h, nil
}
