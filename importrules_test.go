// Package driftline_test enforces the import rules of DESIGN.md's layout
// table on the production code (test files are not checked).
package driftline_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/driftline/driftline"

// forbidden maps each top-level folder to the top-level folders its
// production code must not import, from DESIGN.md's layout table:
//
//   - pipeline builds on nothing else in the repo;
//   - stages build on pipeline, models and detectors;
//   - models must not import pipeline, stages or connectors (models/...
//     packages may import each other);
//   - detectors import nothing outside detectors/... (see isolated);
//   - connectors build on pipeline only;
//   - testkit is never imported by production code (see testkitAllowed);
//   - internal (internal/app, the composition root) may import everything
//     but testkit and cmd;
//   - nothing imports cmd.
var forbidden = map[string][]string{
	"pipeline":   {"stages", "models", "detectors", "connectors", "testkit", "cmd"},
	"stages":     {"connectors", "testkit", "cmd"},
	"models":     {"pipeline", "stages", "connectors", "testkit", "cmd"},
	"detectors":  {"pipeline", "stages", "models", "connectors", "testkit", "cmd"},
	"connectors": {"stages", "models", "detectors", "testkit", "cmd"},
	"testkit":    {"cmd"},
	"internal":   {"testkit", "cmd"},
	"cmd":        {},
}

// isolated folders may import nothing from the repo outside themselves,
// including folders added after this test was written.
var isolated = map[string]bool{"detectors": true}

// testkitAllowed lists the production packages that may import a testkit
// package, with the one package tree each may import. The exception: the
// `driftline produce`, `demo` and `eval` commands write and draw testkit's
// seeded drift streams (SEA, Hyperplane, Agrawal), as issue 2 requires, so
// cmd/driftline — the CLI, which nothing imports — may use testkit/streams
// and its subpackages (testkit/streams/feed writes them to Kafka and reads
// the outputs back), and what they import. No other testkit package is
// allowed there, and no other production package may import testkit.
var testkitAllowed = map[string]string{
	"cmd/driftline": "testkit/streams",
}

func topFolder(rel string) string {
	top, _, _ := strings.Cut(rel, "/")
	return top
}

// violations returns the rule broken by each of pkg's dependencies (both
// relative to the module; dependencies outside the module are ignored).
// allowedVia holds the dependencies reachable through an allowed testkit
// package, which then are allowed too.
func violations(pkg string, deps []string, allowedVia map[string]bool) []string {
	top := topFolder(pkg)
	bans, known := forbidden[top]
	if !known {
		return []string{pkg + ": top-level folder " + top + "/ has no import rules; add it to DESIGN.md's layout table and to this test"}
	}
	var out []string
	for _, d := range deps {
		rel, ok := strings.CutPrefix(d, module+"/")
		if !ok || rel == pkg {
			continue
		}
		dtop := topFolder(rel)
		switch {
		case dtop == top:
			continue
		case isolated[top]:
			out = append(out, pkg+" imports "+rel+": "+top+"/ must not import anything else from the repo")
		case dtop == "testkit" && top != "testkit":
			if a := testkitAllowed[pkg]; a != "" && (rel == a || strings.HasPrefix(rel, a+"/") || allowedVia[rel]) {
				continue
			}
			out = append(out, pkg+" imports "+rel+": testkit is never imported by production code")
		case slices.Contains(bans, dtop):
			out = append(out, pkg+" imports "+rel+": "+top+"/ must not import "+dtop+"/")
		}
	}
	return out
}

// listDeps runs go list and returns each package of the module with its
// transitive production dependencies: .Deps is what `go list -deps` prints
// for that one package, and without -test it leaves test files and their
// imports out.
func listDeps(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}{{range .Deps}} {{.}}{{end}}", "./...")
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list: %v\n%s", err, stderr)
	}
	pkgs := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		pkgs[f[0]] = f[1:]
	}
	return pkgs
}

func TestImportRules(t *testing.T) {
	pkgs := listDeps(t)
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	allowedVia := map[string]bool{}
	for _, via := range testkitAllowed {
		if _, ok := pkgs[module+"/"+via]; !ok {
			t.Fatalf("allowed testkit package %s does not exist", via)
		}
		for path, deps := range pkgs {
			if path != module+"/"+via && !strings.HasPrefix(path, module+"/"+via+"/") {
				continue
			}
			for _, d := range deps {
				if rel, ok := strings.CutPrefix(d, module+"/"); ok {
					allowedVia[rel] = true
				}
			}
		}
	}
	checked := map[string]int{}
	for path, deps := range pkgs {
		pkg, ok := strings.CutPrefix(path, module+"/")
		if !ok {
			continue // the module root holds only this test
		}
		checked[topFolder(pkg)]++
		for _, v := range violations(pkg, deps, allowedVia) {
			t.Error(v)
		}
	}
	for top := range forbidden {
		if checked[top] == 0 {
			t.Errorf("no package found under %s/: the rules check nothing there", top)
		}
	}
}

// The rule function catches violations: each case is a synthetic
// dependency list that breaks (or keeps) one rule.
func TestImportRulesCatchViolations(t *testing.T) {
	m := func(rel ...string) []string {
		out := []string{"context", "github.com/twmb/franz-go/pkg/kgo"}
		for _, r := range rel {
			out = append(out, module+"/"+r)
		}
		return out
	}
	via := map[string]bool{"testkit/internal/rng": true}
	for _, tc := range []struct {
		pkg  string
		deps []string
		bad  bool
	}{
		{"pipeline", m("stages"), true},
		{"pipeline", m("models"), true},
		{"pipeline", m("connectors/kafka"), true},
		{"pipeline", m("testkit/kafkatest"), true},
		{"pipeline", m(), false},
		{"stages", m("pipeline", "models", "detectors/alert"), false},
		{"stages", m("connectors/kafka"), true},
		{"stages", m("testkit/streams"), true},
		{"models/rollout", m("models/registry", "models"), false},
		{"models/rollout", m("detectors/alert"), false},
		{"models/registry", m("pipeline"), true},
		{"models", m("stages"), true},
		{"detectors/alert", m("detectors", "detectors/internal/stat"), false},
		{"detectors", m("pipeline"), true},
		{"detectors", m("newfolder/x"), true},
		{"connectors/lake", m("pipeline", "connectors/kafka"), false},
		{"connectors/kafka", m("stages"), true},
		{"connectors/kafka", m("detectors/alert"), true},
		{"connectors/kafka", m("testkit/kafkatest"), true},
		{"connectors/kafka", m("cmd/driftline"), true},
		{"testkit/kafkatest", m("connectors/kafka"), false},
		{"testkit/kafkatest", m("cmd/driftline"), true},
		{"cmd/driftline", m("pipeline", "stages", "models", "detectors", "connectors/kafka", "testkit/streams"), false},
		{"cmd/driftline", m("testkit/internal/rng"), false}, // reached through testkit/streams
		{"cmd/driftline", m("testkit/kafkatest"), true},
		{"cmd/driftline", m("testkit/streams/feed"), false},
		{"cmd/driftline", m("testkit/streamsx"), true},
		{"cmd/other", m("testkit/streams"), true},
		{"newfolder/x", m(), true},
	} {
		got := violations(tc.pkg, tc.deps, via)
		if (len(got) > 0) != tc.bad {
			t.Errorf("%s with %v: violations %q, want violation: %v", tc.pkg, tc.deps[2:], got, tc.bad)
		}
	}
}
