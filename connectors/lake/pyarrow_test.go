package lake

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"reflect"
	"testing"
	"time"

	"github.com/driftline/driftline/pipeline"
)

// pyarrowInstall is how to get the independent reader these tests need.
const pyarrowInstall = "python3 -m pip install pyarrow==26.0.1"

// lakeView is what testdata/check_lake.py prints.
type lakeView struct {
	Pyarrow    string           `json:"pyarrow"`
	Partitions map[string]int64 `json:"partitions"`
	Files      []struct {
		Path    string            `json:"path"`
		Rows    int64             `json:"rows"`
		Types   map[string]string `json:"types"`
		Columns map[string][]any  `json:"columns"`
	} `json:"files"`
	Stray []string `json:"stray"`
}

// readWithPyarrow reads root with pyarrow; it fails the test, naming the
// install command, when pyarrow is missing.
func readWithPyarrow(t *testing.T, root string) lakeView {
	t.Helper()
	if out, err := exec.Command("python3", "-c", "import pyarrow").CombinedOutput(); err != nil {
		t.Fatalf("pyarrow is needed to check the lake independently; install it with: %s\n(%v: %s)", pyarrowInstall, err, out)
	}
	var stderr bytes.Buffer
	cmd := exec.Command("python3", "testdata/check_lake.py", root)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("check_lake.py: %v\n%s", err, stderr.String())
	}
	var v lakeView
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("check_lake.py output: %v\n%s", err, out)
	}
	return v
}

// pyRow is one row as pyarrow read it, in the fields the test checks.
type pyRow struct {
	ID        string
	Amount    float64
	Score     float64
	Label     any // nil or float64
	Version   string
	Topic     string
	Partition float64
	Offset    float64
	EventTime float64 // µs
}

func TestPyarrowReadsLake(t *testing.T) {
	root := t.TempDir()
	w := newWriter(t, Config{Root: root, TimeColumn: "ts"})

	// Partition 0 through WriteBatch: rejected and duplicate rows stay out;
	// row "c" has no event time and takes its record time (13:59).
	b := batch("events", 0, []ev{
		{id: "a", ts: at(10 * time.Minute), amount: 1.5, offset: 10, score: 0.25},
		{id: "rej", ts: at(20 * time.Minute), offset: 11, state: pipeline.RowRejected},
		{id: "b", ts: at(65 * time.Minute), amount: 2.5, offset: 12, score: 0.5},
		{id: "c", amount: 3.5, offset: 13, recTime: at(59 * time.Minute), score: 0.75},
		{id: "dup", ts: at(30 * time.Minute), offset: 14, state: pipeline.RowDuplicate},
		{id: "d", ts: at(2 * time.Hour), amount: 4.5, offset: 15, score: 1},
		{id: "late", ts: at(2 * time.Hour), amount: 9, offset: 16, score: 0.5},
	})
	defer b.Record.Release()
	// A row rejected after scoring keeps its feature row and score; the
	// lake must still leave it out.
	b.Reject(6, "label", "test", "")
	if err := w.WriteBatch(b, "v7"); err != nil {
		t.Fatal(err)
	}
	// Partition 1 through Write, with joined labels, all in hour 14.
	evs := []ev{
		{id: "e", ts: at(70 * time.Minute), amount: 5.5, offset: 100, score: 0.125},
		{id: "f", ts: at(71 * time.Minute), amount: 6.5, offset: 101, score: 0.375},
		{id: "g", ts: at(72 * time.Minute), amount: 7.5, offset: 102, score: 0.625},
	}
	rec := record(evs)
	defer rec.Release()
	x := extras("events", 1, evs)
	x.Labels, x.LabelValid = []float32{1, 9, 0}, []bool{true, false, true}
	if err := w.Write(rec, x); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	v := readWithPyarrow(t, root)
	t.Logf("pyarrow %s", v.Pyarrow)
	if len(v.Stray) != 0 {
		t.Errorf("stray files after Close: %v", v.Stray)
	}
	wantParts := map[string]int64{"date=2024-05-01/hour=13": 2, "date=2024-05-01/hour=14": 4, "date=2024-05-01/hour=15": 1}
	if !reflect.DeepEqual(v.Partitions, wantParts) {
		t.Errorf("rows per partition = %v, want %v", v.Partitions, wantParts)
	}
	us := func(d time.Duration) float64 { return float64(at(d).UnixMicro()) }
	want := map[string][]pyRow{
		"date=2024-05-01/hour=13": {
			{"a", 1.5, 0.25, nil, "v7", "events", 0, 10, us(10 * time.Minute)},
			{"c", 3.5, 0.75, nil, "v7", "events", 0, 13, us(59 * time.Minute)},
		},
		"date=2024-05-01/hour=14": {
			{"b", 2.5, 0.5, nil, "v7", "events", 0, 12, us(65 * time.Minute)},
			{"e", 5.5, 0.125, 1.0, "v1", "events", 1, 100, us(70 * time.Minute)},
			{"f", 6.5, 0.375, nil, "v1", "events", 1, 101, us(71 * time.Minute)},
			{"g", 7.5, 0.625, 0.0, "v1", "events", 1, 102, us(72 * time.Minute)},
		},
		"date=2024-05-01/hour=15": {
			{"d", 4.5, 1, nil, "v7", "events", 0, 15, us(2 * time.Hour)},
		},
	}
	got := map[string][]pyRow{}
	for _, f := range v.Files {
		dir := f.Path[:len("date=2024-05-01/hour=13")]
		c := f.Columns
		for i := range int(f.Rows) {
			got[dir] = append(got[dir], pyRow{
				c["id"][i].(string), c["amount"][i].(float64), c[ColScore][i].(float64), c[ColLabel][i],
				c[ColModelVersion][i].(string), c[ColSourceTopic][i].(string), c[ColSourcePartition][i].(float64),
				c[ColSourceOffset][i].(float64), c[ColEventTime][i].(float64),
			})
		}
		wantTypes := map[string]string{
			"id": "string", "ts": "timestamp[us, tz=UTC]", "amount": "double",
			ColScore: "float", ColModelVersion: "string", ColLabel: "float", ColSourceTopic: "string",
			ColSourcePartition: "int32", ColSourceOffset: "int64", ColEventTime: "timestamp[us, tz=UTC]",
		}
		if !reflect.DeepEqual(f.Types, wantTypes) {
			t.Errorf("%s: types = %v, want %v", f.Path, f.Types, wantTypes)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rows read by pyarrow:\n got %v\nwant %v", got, want)
	}

	// The manifest lists exactly the files pyarrow found, with their rows,
	// event time bounds and source offsets.
	entries, err := ReadManifest(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(v.Files) {
		t.Fatalf("manifest has %d entries, lake has %d files", len(entries), len(v.Files))
	}
	byPath := map[string]ManifestEntry{}
	for _, e := range entries {
		byPath[e.Path] = e
	}
	for _, f := range v.Files {
		e, ok := byPath[f.Path]
		if !ok {
			t.Fatalf("file %s is not in the manifest", f.Path)
		}
		if e.Rows != f.Rows || e.Bytes <= 0 {
			t.Errorf("%s: manifest rows %d bytes %d, file has %d rows", f.Path, e.Rows, e.Bytes, f.Rows)
		}
		rows := got[f.Path[:len("date=2024-05-01/hour=13")]]
		if e.MinEventTime.UnixMicro() != int64(rows[0].EventTime) || e.MaxEventTime.UnixMicro() != int64(rows[len(rows)-1].EventTime) {
			t.Errorf("%s: manifest event times [%v, %v]", f.Path, e.MinEventTime, e.MaxEventTime)
		}
	}
	hour14 := entries[0]
	for _, e := range entries {
		if e.MinEventTime.Hour() == 14 {
			hour14 = e
		}
	}
	wantSources := []SourceRange{{"events", 0, 12, 12}, {"events", 1, 100, 102}}
	if !reflect.DeepEqual(hour14.Sources, wantSources) {
		t.Errorf("hour 14 sources = %+v, want %+v", hour14.Sources, wantSources)
	}
}
