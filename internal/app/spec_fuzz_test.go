package app_test

import (
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v4"

	"github.com/driftline/driftline/internal/app"
	"github.com/driftline/driftline/testkit/spectest"
)

// FuzzParseSpec feeds YAML to the spec loader (pipeline's checks, then
// the blocks other packages own): it never panics; every error it returns
// is a *pipeline.SpecError naming the file; and an accepted spec marshals
// to YAML that the loader accepts again and that marshals the same.
//
//	go test -run '^$' -fuzz FuzzParseSpec -fuzztime 60s ./internal/app/
func FuzzParseSpec(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("../..", "deploy/examples/*.yaml"))
	for _, p := range append(paths, "demo.yaml") {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("name: x\ntopics: {input: a, predictions: b, dlq: c}\nschema: {id_field: id, fields: [{name: id, type: string, required: true}, {name: v, type: float}]}\nstages: {featurize: {numeric: [v]}}\nmodel: {name: m, threshold: 0.3}\noutput: {propagate_headers: [traceparent]}\nlabels: {max_id_bytes: 64, max_parked: 10}\n"))
	f.Add([]byte("name: [\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := app.ParseSpec("fuzz.yaml", data)
		if err != nil {
			for _, e := range spectest.Errors(t, err) {
				if e.File != "fuzz.yaml" || e.Msg == "" {
					t.Fatalf("error %q does not name the file or say what is wrong", e)
				}
			}
			return
		}
		out1, err := yaml.Marshal(spec)
		if err != nil {
			t.Fatalf("an accepted spec does not marshal: %v", err)
		}
		again, err := app.ParseSpec("again.yaml", out1)
		if err != nil {
			t.Fatalf("an accepted spec marshals to YAML the loader refuses: %v\n%s", err, out1)
		}
		out2, err := yaml.Marshal(again)
		if err != nil {
			t.Fatal(err)
		}
		if string(out1) != string(out2) {
			t.Fatalf("the round trip changed the spec:\n%s\n---\n%s", out1, out2)
		}
	})
}
