package evaluate

import (
	"encoding/csv"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/driftline/driftline/models"
)

// table is a small dataset written in each format by the tests: two
// numeric columns (one with a missing value), a text column, a boolean and
// a text label.
var table = struct {
	x, z   []float64 // z[2] missing
	color  []string
	flag   []bool
	label  []string
	labels []float64 // label as sorted names: no → 0, yes → 1
}{
	x:      []float64{1.5, -2, 3.25, 0},
	z:      []float64{10, 20, math.NaN(), 40},
	color:  []string{"red", "blue", "", "red"},
	flag:   []bool{true, false, true, false},
	label:  []string{"yes", "no", "no", "yes"},
	labels: []float64{1, 0, 0, 1},
}

func writeCSV(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := csv.NewWriter(f)
	w.Write([]string{"x", "color", "z", "flag", "y"})
	for i := range table.x {
		z := strconv.FormatFloat(table.z[i], 'g', -1, 64)
		if math.IsNaN(table.z[i]) {
			z = ""
		}
		w.Write([]string{strconv.FormatFloat(table.x[i], 'g', -1, 64), table.color[i], z, map[bool]string{true: "1", false: "0"}[table.flag[i]], table.label[i]})
	}
	w.Flush()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeJSONL(t *testing.T, path string) {
	t.Helper()
	var b strings.Builder
	for i := range table.x {
		b.WriteString(`{"x": ` + strconv.FormatFloat(table.x[i], 'g', -1, 64) + `, "color": `)
		if table.color[i] == "" {
			b.WriteString("null")
		} else {
			b.WriteString(strconv.Quote(table.color[i]))
		}
		if !math.IsNaN(table.z[i]) {
			b.WriteString(`, "z": ` + strconv.FormatFloat(table.z[i], 'g', -1, 64))
		}
		b.WriteString(`, "flag": ` + strconv.FormatBool(table.flag[i]) + `, "y": ` + strconv.Quote(table.label[i]) + "}\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeParquet(t *testing.T, path string) {
	t.Helper()
	mem := memory.NewGoAllocator()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "x", Type: arrow.PrimitiveTypes.Float64},
		{Name: "color", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "z", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
		{Name: "flag", Type: arrow.FixedWidthTypes.Boolean},
		{Name: "y", Type: arrow.BinaryTypes.String},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for i := range table.x {
		b.Field(0).(*array.Float64Builder).Append(table.x[i])
		if table.color[i] == "" {
			b.Field(1).AppendNull()
		} else {
			b.Field(1).(*array.StringBuilder).Append(table.color[i])
		}
		if math.IsNaN(table.z[i]) {
			b.Field(2).AppendNull()
		} else {
			b.Field(2).(*array.Float32Builder).Append(float32(table.z[i]))
		}
		b.Field(3).(*array.BooleanBuilder).Append(table.flag[i])
		b.Field(4).(*array.StringBuilder).Append(table.label[i])
	}
	rec := b.NewRecord()
	defer rec.Release()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pqarrow.NewFileWriter(schema, f, nil, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestReadFileFormats(t *testing.T) {
	dir := t.TempDir()
	for name, write := range map[string]func(*testing.T, string){
		"t.csv": writeCSV, "t.jsonl": writeJSONL, "t.parquet": writeParquet,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			write(t, path)
			d, err := ReadFile(path, ReadOptions{Label: "y", HashBits: 8})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(d.Dense, ",") != "x,z,flag" || strings.Join(d.Hashed, ",") != "color" {
				t.Fatalf("dense %v, hashed %v; want x,z,flag and color", d.Dense, d.Hashed)
			}
			if d.Rows.N != 4 || strings.Join(d.LabelNames, ",") != "no,yes" {
				t.Fatalf("%d rows, label names %v", d.Rows.N, d.LabelNames)
			}
			for i := range table.x {
				row := d.Rows.DenseRow(i)
				flag := float32(0)
				if table.flag[i] {
					flag = 1
				}
				if row[0] != float32(table.x[i]) || row[2] != flag || d.Labels[i] != table.labels[i] {
					t.Fatalf("row %d: %v label %v", i, row, d.Labels[i])
				}
				if math.IsNaN(table.z[i]) != math.IsNaN(float64(row[1])) || (!math.IsNaN(table.z[i]) && row[1] != float32(table.z[i])) {
					t.Fatalf("row %d: z %v, want %v", i, row[1], table.z[i])
				}
				h := d.Rows.HashedRow(i)[0]
				if (table.color[i] == "") != (h == -1) || h >= 1<<8 {
					t.Fatalf("row %d: color %q hashed to %d", i, table.color[i], h)
				}
			}
			if d.Rows.HashedRow(0)[0] != d.Rows.HashedRow(3)[0] || d.Rows.HashedRow(0)[0] == d.Rows.HashedRow(1)[0] {
				t.Fatal("equal colors must share a bucket, different ones (here) not")
			}
			y, k, missing, err := d.Targets(models.TaskClassification)
			if err != nil || k != 2 || len(missing) != 0 || y[0] != 1 {
				t.Fatalf("targets %v, %d classes, missing %v, %v", y, k, missing, err)
			}
			if _, _, _, err := d.Targets(models.TaskRegression); err == nil {
				t.Fatal("text labels accepted for regression")
			}
		})
	}
}

func TestReadFileErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "t.csv")
	writeCSV(t, path)
	for _, tc := range []struct {
		path, label, want string
	}{
		{path, "label", `no label column "label"`},
		{path, "", "no label column given"},
		{filepath.Join(dir, "t.xlsx"), "y", "unknown format"},
		{filepath.Join(dir, "none.csv"), "y", "no such file"},
	} {
		if _, err := ReadFile(tc.path, ReadOptions{Label: tc.label}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadFile(%s, %q) = %v, want an error mentioning %q", tc.path, tc.label, err, tc.want)
		}
	}
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte("{\"y\": 1, \"v\": [1, 2]}\n"), 0o644)
	if _, err := ReadFile(bad, ReadOptions{Label: "y"}); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("nested JSON value: %v, want an error naming line 1", err)
	}
}

// TestRunScoresPrequentially replays a stream through a logistic learner
// and checks the report against the same predict-then-learn loop scored
// by hand, and the AUC against the definition (pairs ranked right).
func TestRunScoresPrequentially(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	const n = 3000
	d := &Dataset{Dense: []string{"a", "b"}, Label: "y", Rows: models.Rows{N: n, NumDense: 2, Dense: make([]float32, 2*n)}, Labels: make([]float64, n)}
	for i := range n {
		a, b := rng.NormFloat64(), rng.NormFloat64()
		d.Rows.Dense[2*i], d.Rows.Dense[2*i+1] = float32(a), float32(b)
		if a+0.5*b+0.3*rng.NormFloat64() > 0 {
			d.Labels[i] = 1
		}
	}
	d.Labels[7] = math.NaN()
	y, k, missing, err := d.Targets(models.TaskClassification)
	if err != nil || k != 2 || len(missing) != 1 {
		t.Fatalf("targets: %d classes, missing %v, %v", k, missing, err)
	}
	spec := models.LearnerSpec{Kind: "logistic"}
	l, err := models.NewLearnerFromSpec(spec, d.Shape(), k)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(l, d, y, k, Options{Every: 1000})
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := models.NewLearnerFromSpec(spec, d.Shape(), k)
	out := make([]float32, 1)
	correct, ll := 0, 0.0
	var probs []float64
	var pos []bool
	for i := range n {
		if i == 7 {
			continue
		}
		row := &models.Rows{N: 1, NumDense: 2, Dense: d.Rows.DenseRow(i)}
		ref.Predict(out, row)
		p := float64(out[0])
		if (p > 0.5) == (y[i] == 1) {
			correct++
		}
		if y[i] == 1 {
			ll -= math.Log(p)
		} else {
			ll -= math.Log(1 - p)
		}
		probs, pos = append(probs, p), append(pos, y[i] == 1)
		ref.Learn(row, y[i:i+1])
	}
	m := float64(n - 1)
	if rep.Rows != n-1 || rep.Skipped != 1 || *rep.Accuracy != float64(correct)/m || math.Abs(*rep.LogLoss-ll/m) > 1e-12 {
		t.Fatalf("report %+v: rows %d, accuracy %v, logloss %v; want %d, %v, %v", rep, rep.Rows, *rep.Accuracy, *rep.LogLoss, n-1, float64(correct)/m, ll/m)
	}
	var good, pairs float64
	for i := range probs {
		for j := range probs {
			if pos[i] && !pos[j] {
				pairs++
				switch {
				case probs[i] > probs[j]:
					good++
				case probs[i] == probs[j]:
					good += 0.5
				}
			}
		}
	}
	if math.Abs(*rep.AUC-good/pairs) > 1e-12 {
		t.Fatalf("AUC %v, by pairs %v", *rep.AUC, good/pairs)
	}
	if len(rep.Curve) != 2 || rep.Curve[0].Rows != 1000 || rep.Curve[1].Rows != 2000 || rep.EventsPerS <= 0 {
		t.Fatalf("curve %+v, events/s %v", rep.Curve, rep.EventsPerS)
	}
}

// miniBatchLinear is a linear learner that declares mini-batches of 4, and
// records the batches it is given, to check Run's mini-batch protocol.
type miniBatchLinear struct {
	*models.Linear
	predicted, learned []int
}

func (m *miniBatchLinear) MiniBatch() int { return 4 }

func (m *miniBatchLinear) Predict(dst []float32, rows *models.Rows) error {
	m.predicted = append(m.predicted, rows.N)
	return m.Linear.Predict(dst, rows)
}

func (m *miniBatchLinear) Learn(rows *models.Rows, y []float32) error {
	if len(m.predicted) != len(m.learned)+1 || m.predicted[len(m.predicted)-1] != rows.N {
		return os.ErrInvalid
	}
	m.learned = append(m.learned, rows.N)
	return m.Linear.Learn(rows, y)
}

func TestRunMiniBatches(t *testing.T) {
	const n = 10
	d := &Dataset{Label: "y", Rows: models.Rows{N: n, NumDense: 1, Dense: make([]float32, n)}, Labels: make([]float64, n)}
	for i := range n {
		d.Rows.Dense[i], d.Labels[i] = float32(i), float64(i)
	}
	lin, err := models.NewLinear(models.LinearConfig{NumDense: 1})
	if err != nil {
		t.Fatal(err)
	}
	m := &miniBatchLinear{Linear: lin}
	y, _, _, _ := d.Targets(models.TaskRegression)
	rep, err := Run(m, d, y, 0, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rows != n || len(m.learned) != 3 || m.learned[0] != 4 || m.learned[2] != 2 || rep.MAE == nil || rep.RMSE == nil {
		t.Fatalf("rows %d, batches %v, report %+v", rep.Rows, m.learned, rep)
	}
}
