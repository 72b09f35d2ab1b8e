// Package evaluate is driftline's prequential evaluation, River's
// evaluate.progressive_val_score: each row of a dataset is predicted, then
// learned, in order, and the predictions made before learning are scored.
// It reads CSV, JSONL and Parquet files into memory (ReadFile), and scores
// any models.Learner (Run).
package evaluate

import (
	"encoding/csv"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"slices"
	"strconv"

	"github.com/driftline/driftline/models"
)

// Dataset is a table held in memory: its feature rows and a label per row.
type Dataset struct {
	// Dense and Hashed name the feature columns: Rows.Dense[i*NumDense+j]
	// is Dense[j]'s value, Rows.Hashed[i*NumHashed+c] the hash bucket of
	// Hashed[c]'s value (−1 when empty).
	Dense, Hashed []string
	Rows          models.Rows
	HashBits      int
	// Label names the label column. Labels[i] is row i's label: its value,
	// or, when LabelNames is set (a text label column), the index of its
	// name in LabelNames (sorted). NaN marks a missing label.
	Label      string
	Labels     []float64
	LabelNames []string
}

// Shape is the rows' shape, as the learner must take them.
func (d *Dataset) Shape() models.Shape {
	return models.Shape{NumDense: d.Rows.NumDense, NumHashed: d.Rows.NumHashed, HashBits: d.HashBits}
}

// Targets converts the labels for a task: class indices and the number of
// classes K (at least 2) for classification, values for regression. Class
// labels are the sorted names of a text label column, or non-negative
// integers. Rows whose label is missing are reported in missing.
func (d *Dataset) Targets(task models.Task) (y []float32, classes int, missing []int, err error) {
	y = make([]float32, len(d.Labels))
	for i, v := range d.Labels {
		if math.IsNaN(v) {
			missing = append(missing, i)
		}
		y[i] = float32(v)
	}
	if task == models.TaskRegression {
		if d.LabelNames != nil {
			return nil, 0, nil, fmt.Errorf("label column %q holds text (%q, …); regression needs numbers", d.Label, d.LabelNames[0])
		}
		return y, 1, missing, nil
	}
	if d.LabelNames != nil {
		return y, max(2, len(d.LabelNames)), missing, nil
	}
	top := 0.0
	for i, v := range d.Labels {
		if math.IsNaN(v) {
			continue
		}
		if v < 0 || v != math.Trunc(v) || v > models.MaxTreeClasses {
			return nil, 0, nil, fmt.Errorf("label column %q: row %d has label %v; classification needs class indices 0, 1, … (or text labels)", d.Label, i, v)
		}
		top = max(top, v)
	}
	return y, max(2, int(top)+1), missing, nil
}

// tableBuilder turns typed columns into a Dataset.
type tableBuilder struct {
	names    []string
	numeric  []bool // per column: numbers (dense) or text (hashed)
	label    int
	hashBits int
}

// newTableBuilder checks the label column and orders the features: the
// numeric columns become dense values, the others hashed categoricals.
func newTableBuilder(names []string, numeric []bool, label string, hashBits int) (*tableBuilder, *Dataset, error) {
	li := slices.Index(names, label)
	if li < 0 {
		return nil, nil, fmt.Errorf("no label column %q among the columns %v", label, names)
	}
	b := &tableBuilder{names: names, numeric: numeric, label: li, hashBits: hashBits}
	d := &Dataset{Label: label, HashBits: hashBits}
	for i, n := range names {
		switch {
		case i == li:
		case numeric[i]:
			d.Dense = append(d.Dense, n)
		default:
			d.Hashed = append(d.Hashed, n)
		}
	}
	if len(d.Hashed) == 0 {
		d.HashBits = 0
	}
	d.Rows.NumDense, d.Rows.NumHashed = len(d.Dense), len(d.Hashed)
	return b, d, nil
}

// cell is one value of a row as a reader found it.
type cell struct {
	num   float64
	text  string
	isNum bool
	empty bool
}

// addRow appends one row, its cells in column order.
func (b *tableBuilder) addRow(d *Dataset, cells []cell, labelText map[string]int, labelTexts *[]string) {
	col := 0
	for i, c := range cells {
		switch {
		case i == b.label:
			switch {
			case c.empty:
				d.Labels = append(d.Labels, math.NaN())
			case c.isNum && labelText == nil:
				d.Labels = append(d.Labels, c.num)
			default:
				text := c.text
				if c.isNum {
					text = strconv.FormatFloat(c.num, 'g', -1, 64)
				}
				idx, ok := labelText[text]
				if !ok {
					idx = len(labelText)
					labelText[text] = idx
					*labelTexts = append(*labelTexts, text)
				}
				d.Labels = append(d.Labels, float64(idx))
			}
		case b.numeric[i]:
			v := float32(math.NaN())
			if !c.empty {
				v = float32(c.num)
			}
			d.Rows.Dense = append(d.Rows.Dense, v)
		default:
			bucket := int32(-1)
			if !c.empty {
				text := c.text
				if c.isNum {
					text = strconv.FormatFloat(c.num, 'g', -1, 64)
				}
				bucket = hashBucket(col, text, b.hashBits)
			}
			d.Rows.Hashed = append(d.Rows.Hashed, bucket)
		}
		if i != b.label && !b.numeric[i] {
			col++
		}
	}
	d.Rows.N++
}

// hashBucket is FNV-1a of a categorical column's position and value, masked
// to bits: different columns' equal values land in different buckets.
func hashBucket(col int, value string, bits int) int32 {
	h := fnv.New32a()
	var pos [4]byte
	pos[0], pos[1], pos[2], pos[3] = byte(col), byte(col>>8), byte(col>>16), byte(col>>24)
	h.Write(pos[:])
	h.Write([]byte(value))
	return int32(h.Sum32() & (1<<bits - 1))
}

// finishLabels sorts text labels and renumbers the rows' labels by the
// sorted names.
func finishLabels(d *Dataset, names []string) {
	if names == nil {
		return
	}
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	rank := make([]float64, len(names))
	for i, n := range names {
		rank[i] = float64(slices.Index(sorted, n))
	}
	for i, v := range d.Labels {
		if !math.IsNaN(v) {
			d.Labels[i] = rank[int(v)]
		}
	}
	d.LabelNames = sorted
}

// WriteCSVFile writes the dataset's dense features and its label as a CSV
// file with a header, each float32 value in full, so that a reader parsing
// doubles (River, pandas) sees exactly the values the rows hold.
func (d *Dataset) WriteCSVFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	rec := append(slices.Clone(d.Dense), d.Label)
	_ = w.Write(rec)
	for i := range d.Rows.N {
		for j, v := range d.Rows.DenseRow(i) {
			rec[j] = strconv.FormatFloat(float64(v), 'g', -1, 64)
		}
		rec[len(rec)-1] = strconv.FormatFloat(d.Labels[i], 'g', -1, 64)
		_ = w.Write(rec)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
