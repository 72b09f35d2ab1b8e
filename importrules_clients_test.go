package driftline_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// franzClients lists the franz-go packages that make or drive a Kafka client;
// only connectors/... may import them (kmsg, the wire messages, and kfake,
// the in-process cluster of the demo and tests, are not clients).
var franzClients = []string{
	"github.com/twmb/franz-go/pkg/kgo",
	"github.com/twmb/franz-go/pkg/kadm",
	"github.com/twmb/franz-go/pkg/kerr",
}

// goRedisConstructors are the go-redis functions that build a client; only
// connectors/redis calls them.
var goRedisConstructors = []string{"NewClient", "NewUniversalClient", "NewFailoverClient", "NewFailoverClusterClient",
	"NewClusterClient", "NewRing", "NewSentinelClient"}

const goRedis = "github.com/redis/go-redis/v9"

// prodPackage is one package's production files, as go list gives them.
type prodPackage struct {
	rel, name string
	files     []string // absolute paths
}

func listProduction(t *testing.T) []prodPackage {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}\t{{.Name}}\t{{.Dir}}\t{{join .GoFiles \",\"}}\t{{join .CgoFiles \",\"}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []prodPackage
	for line := range strings.Lines(strings.TrimSpace(string(out))) {
		f := strings.Split(strings.TrimRight(line, "\n"), "\t")
		rel, ok := strings.CutPrefix(f[0], module+"/")
		if !ok {
			continue
		}
		p := prodPackage{rel: rel, name: f[1]}
		for _, names := range f[3:] {
			for n := range strings.SplitSeq(names, ",") {
				if n != "" {
					p.files = append(p.files, filepath.Join(f[2], n))
				}
			}
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

// clientViolations checks one production file: franz-go client packages
// outside connectors/..., go-redis client constructors outside
// connectors/redis (testkit aside: it starts and probes the real servers).
func clientViolations(rel string, fset *token.FileSet, f *ast.File) []string {
	var out []string
	redisName := ""
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		if slices.Contains(franzClients, path) && topFolder(rel) != "connectors" && topFolder(rel) != "testkit" {
			out = append(out, rel+": imports "+path+": only connectors/... builds Kafka clients (connectors/kafka)")
		}
		if path == goRedis {
			redisName = "redis"
			if imp.Name != nil {
				redisName = imp.Name.Name
			}
		}
	}
	if redisName == "" || rel == "connectors/redis" || topFolder(rel) == "testkit" {
		return out
	}
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if id, ok := sel.X.(*ast.Ident); ok && id.Name == redisName && slices.Contains(goRedisConstructors, sel.Sel.Name) {
			out = append(out, rel+": "+fset.Position(sel.Pos()).String()+": calls "+redisName+"."+sel.Sel.Name+": only connectors/redis builds Redis clients")
		}
		return true
	})
	return out
}

// TestClientOwnersAndMains: every Kafka client is built in connectors/...,
// every Redis client in connectors/redis, and every package main lives
// under cmd/ (issue 10's rules, with DESIGN.md's layout).
func TestClientOwnersAndMains(t *testing.T) {
	fset := token.NewFileSet()
	files := 0
	for _, p := range listProduction(t) {
		if p.name == "main" && topFolder(p.rel) != "cmd" {
			t.Errorf("%s: package main outside cmd/", p.rel)
		}
		for _, path := range p.files {
			f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			if slices.ContainsFunc(f.Imports, func(i *ast.ImportSpec) bool { return strings.Contains(i.Path.Value, goRedis) }) {
				if f, err = parser.ParseFile(fset, path, nil, parser.SkipObjectResolution); err != nil {
					t.Fatal(err)
				}
			}
			files++
			for _, v := range clientViolations(p.rel, fset, f) {
				t.Error(v)
			}
		}
	}
	if files < 50 {
		t.Fatalf("checked only %d files", files)
	}
}

// The checks catch what they should: each case is a synthetic file.
func TestClientOwnersCatchViolations(t *testing.T) {
	for _, tc := range []struct {
		rel, src string
		bad      bool
	}{
		{"stages", `package stages; import "github.com/twmb/franz-go/pkg/kgo"; var _ kgo.Opt`, true},
		{"cmd/driftline", `package main; import "github.com/twmb/franz-go/pkg/kadm"; var _ *kadm.Client`, true},
		{"connectors/kafka", `package kafka; import "github.com/twmb/franz-go/pkg/kgo"; var _ kgo.Opt`, false},
		{"testkit/kafkatest", `package kafkatest; import "github.com/twmb/franz-go/pkg/kgo"; var _ kgo.Opt`, false},
		{"stages", `package stages; import "github.com/redis/go-redis/v9"; var _ = redis.NewClient(nil)`, true},
		{"models/registry", `package registry; import goredis "github.com/redis/go-redis/v9"; var _ = goredis.NewClusterClient(nil)`, true},
		{"stages", `package stages; import "github.com/redis/go-redis/v9"; var _ redis.UniversalClient`, false},
		{"connectors/redis", `package redis; import goredis "github.com/redis/go-redis/v9"; var _ = goredis.NewClient(nil)`, false},
		{"testkit/redistest", `package redistest; import "github.com/redis/go-redis/v9"; var _ = redis.NewClient(nil)`, false},
	} {
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, "x.go", tc.src, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := clientViolations(tc.rel, fset, f); (len(got) > 0) != tc.bad {
			t.Errorf("%s %q: violations %q, want violation: %v", tc.rel, tc.src, got, tc.bad)
		}
	}
}
