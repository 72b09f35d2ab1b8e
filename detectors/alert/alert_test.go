package alert

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func newTestGate(t *testing.T) *Gate {
	t.Helper()
	cfg := DefaultGateConfig()
	cfg.MinSamples = 100
	cfg.ResolveAfter = 2
	cfg.CoolDown = time.Hour
	g, err := NewGate(cfg)
	if err != nil {
		t.Fatalf("new gate: %v", err)
	}
	return g
}

// feed sends one signal per minute, coded as 'd' drift, 'w' warning, '.' clear,
// and returns the states of the alerts emitted, '-' where none was.
func feed(g *Gate, start time.Time, codes string, window uint64) []string {
	var out []string
	for i, c := range codes {
		s := Signal{Detector: "ADWIN", Subject: "error", ModelVersion: "v1", Statistic: float64(i), Threshold: 1,
			Window: window, Drift: c == 'd', Warning: c == 'w', At: start.Add(time.Duration(i) * time.Minute)}
		if a, ok := g.Observe(s); ok {
			out = append(out, string(a.State))
		} else {
			out = append(out, "-")
		}
	}
	return out
}

func TestGateHysteresisOneAlertPerEpisode(t *testing.T) {
	g := newTestGate(t)
	got := feed(g, t0, "..wwdddd.d..", 500)
	want := []string{"-", "-", "warning", "-", "drift", "-", "-", "-", "-", "-", "-", "resolved"}
	if !slices.Equal(got, want) {
		t.Fatalf("states %v, want %v", got, want)
	}
}

func TestGateCoolDown(t *testing.T) {
	g := newTestGate(t)
	feed(g, t0, "d..", 500) // resolves at t0+2m, cool-down until t0+62m
	if got := feed(g, t0.Add(10*time.Minute), "d", 500); got[0] != "-" {
		t.Fatalf("drift inside the cool-down emitted %q", got[0])
	}
	if got := feed(g, t0.Add(63*time.Minute), "d", 500); got[0] != "drift" {
		t.Fatalf("drift after the cool-down emitted %q, want drift", got[0])
	}
}

func TestGateMinSamples(t *testing.T) {
	g := newTestGate(t)
	if got := feed(g, t0, "dddd", 99); !slices.Equal(got, []string{"-", "-", "-", "-"}) {
		t.Fatalf("signals under the minimum sample size emitted %v", got)
	}
}

func TestGateConfirmDrift(t *testing.T) {
	cfg := DefaultGateConfig()
	cfg.ConfirmDrift = 2
	g, err := NewGate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := feed(g, t0, "d.dd", 5000); !slices.Equal(got, []string{"-", "-", "-", "drift"}) {
		t.Fatalf("states %v, want drift only after two consecutive drift signals", got)
	}
	if open := g.Open(); len(open) != 1 || open[0].State != StateDrift {
		t.Fatalf("open episodes %+v, want one in drift", open)
	}
}

func TestAlertJSONSchema(t *testing.T) {
	g := newTestGate(t)
	a, ok := g.Observe(Signal{Detector: "KS", Subject: "amount", ModelVersion: "v7", Statistic: 0.2,
		Threshold: 0.01, Window: 5000, Drift: true, At: t0})
	if !ok {
		t.Fatal("no alert for a drift signal")
	}
	raw, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"detector":"KS","subject":"amount","model_version":"v7","statistic":0.2,"threshold":0.01,` +
		`"window":5000,"severity":"critical","first_seen":"2025-01-02T03:04:05Z","last_seen":"2025-01-02T03:04:05Z",` +
		`"dedupe_key":"KS/amount/v7/1735787045000000000","state":"drift"}`
	if string(raw) != want {
		t.Fatalf("JSON\n%s\nwant\n%s", raw, want)
	}
}

func TestGateConfigValidate(t *testing.T) {
	cfg := DefaultGateConfig()
	cfg.ResolveAfter = 0
	if _, err := NewGate(cfg); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("NewGate with ResolveAfter 0: err %v, want ErrInvalidConfig", err)
	}
}
