package registry_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/testkit/redistest"
)

func nan() float64 { return math.NaN() }

func TestRegistryMiniredis(t *testing.T) { runSuite(t, redistest.StartMiniredis) }

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg registry.Config
		ok  bool
	}{
		{registry.Config{}, true},
		{registry.Config{Prefix: "app:{reg}", AuditMaxLen: 10, WatchInterval: time.Millisecond}, true},
		{registry.Config{Prefix: "noslot"}, false},
		{registry.Config{Prefix: "{}"}, false},
		{registry.Config{Prefix: "}x{"}, false},
		{registry.Config{AuditMaxLen: -1}, false},
		{registry.Config{WatchInterval: time.Microsecond}, false},
		{registry.Config{WatchInterval: time.Hour}, false},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, registry.ErrInvalid)) {
			t.Errorf("Validate(%+v) = %v; want ok=%v", tc.cfg, err, tc.ok)
		}
	}
	if _, err := registry.New(nil, registry.Config{}); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("New(nil) = %v; want ErrInvalid", err)
	}
}

func TestValidName(t *testing.T) {
	for s, want := range map[string]bool{
		"champion": true, "fraud-v2.1_x": true, "9lives": true,
		"": false, "-x": false, "a:b": false, "{a}": false, "a b": false, string(make([]byte, 129)): false,
	} {
		if got := registry.ValidName(s); got != want {
			t.Errorf("ValidName(%q) = %v; want %v", s, got, want)
		}
	}
}
