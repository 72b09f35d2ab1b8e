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

func TestOutcomeSumsAddSub(t *testing.T) {
	a := registry.OutcomeSums{N: 3, Correct: 2, Positives: 1, LogLoss: 1.5, LogLossSq: 1, AbsErr: 0.5, AbsErrSq: 0.1, SqErr: 0.2, SqErrSq: 0.04}
	b := registry.OutcomeSums{N: 1, Correct: 1, LogLoss: 0.25, LogLossSq: 0.0625, AbsErr: 2, AbsErrSq: 4, SqErr: 4, SqErrSq: 16}
	sum := a.Add(b)
	want := registry.OutcomeSums{N: 4, Correct: 3, Positives: 1, LogLoss: 1.75, LogLossSq: 1.0625, AbsErr: 2.5, AbsErrSq: 4.1, SqErr: 4.2, SqErrSq: 16.04}
	if sum != want {
		t.Fatalf("Add = %+v; want %+v", sum, want)
	}
	if got := sum.Sub(b); got.N != a.N || got.Correct != a.Correct || math.Abs(got.SqErrSq-a.SqErrSq) > 1e-12 || math.Abs(got.AbsErrSq-a.AbsErrSq) > 1e-12 {
		t.Fatalf("Sub = %+v; want %+v", got, a)
	}
	if got := a.Sub(a); got != (registry.OutcomeSums{}) {
		t.Fatalf("a - a = %+v; want zero", got)
	}
}
