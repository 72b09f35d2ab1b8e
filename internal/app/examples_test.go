package app_test

import (
	"net"
	"path/filepath"
	"testing"

	"github.com/driftline/driftline/internal/app"
)

// Every shipped spec is one `driftline validate-spec` accepts.
func TestShippedSpecsLoad(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("../..", "deploy/examples/*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 2 {
		t.Fatalf("%d example specs in deploy/examples, want at least 2", len(paths))
	}
	paths = append(paths, filepath.Join("../..", "internal/app/demo.yaml"))
	for _, p := range paths {
		s, err := app.LoadSpec(p)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if filepath.Base(p) != "demo.yaml" && (len(s.Kafka.Brokers) == 0 || s.Redis.Addr == "" || s.Admin.Addr == "") {
			t.Errorf("%s: an example for real clusters names brokers, redis.addr and admin.addr", p)
		}
		// The admin address serves this host only: loopback, named.
		if host, _, err := net.SplitHostPort(s.Admin.Addr); s.Admin.Addr != "" && (err != nil || !net.ParseIP(host).IsLoopback()) {
			t.Errorf("%s: admin.addr %q, want a loopback address", p, s.Admin.Addr)
		}
	}
}
