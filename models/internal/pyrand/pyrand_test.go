package pyrand

import (
	"encoding/json"
	"os"
	"slices"
	"testing"
)

// golden is testdata/python_random.json, written by
// testdata/gen_python_random.py from CPython's random module.
type golden struct {
	Cases []struct {
		Seed     uint64     `json:"seed"`
		Random   []float64  `json:"random"`
		Bits     [][2]int64 `json:"bits"`
		Below    [][2]int64 `json:"below"`
		Sample   []sample   `json:"sample"`
		Poisson6 []int      `json:"poisson6"`
		Poisson1 []int      `json:"poisson1"`
	} `json:"cases"`
}

type sample struct {
	n, k int
	want []int32
}

func (s *sample) UnmarshalJSON(b []byte) error {
	var raw [3]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	for i, p := range []any{&s.n, &s.k, &s.want} {
		if err := json.Unmarshal(raw[i], p); err != nil {
			return err
		}
	}
	return nil
}

func TestMatchesCPython(t *testing.T) {
	data, err := os.ReadFile("testdata/python_random.json")
	if err != nil {
		t.Fatalf("read golden file (regenerate with testdata/gen_python_random.py): %v", err)
	}
	var g golden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Cases) == 0 {
		t.Fatal("golden file has no cases")
	}
	for _, c := range g.Cases {
		s := New(c.Seed)
		for i, want := range c.Random {
			if got := s.Float64(); got != want {
				t.Fatalf("seed %d: random() #%d = %v, Python gives %v", c.Seed, i, got, want)
			}
		}
		for _, b := range c.Bits {
			if got := s.Bits(int(b[0])); int64(got) != b[1] {
				t.Fatalf("seed %d: getrandbits(%d) = %d, Python gives %d", c.Seed, b[0], got, b[1])
			}
		}
		for _, b := range c.Below {
			if got := s.Below(int(b[0])); int64(got) != b[1] {
				t.Fatalf("seed %d: _randbelow(%d) = %d, Python gives %d", c.Seed, b[0], got, b[1])
			}
		}
		for _, sm := range c.Sample {
			pool := make([]int32, sm.n)
			for i := range pool {
				pool[i] = int32(i)
			}
			if got := s.Sample(nil, pool, sm.k); !slices.Equal(got, sm.want) {
				t.Fatalf("seed %d: sample(range(%d), %d) = %v, Python gives %v", c.Seed, sm.n, sm.k, got, sm.want)
			}
		}
		for i, want := range c.Poisson6 {
			if got := s.Poisson(6); got != want {
				t.Fatalf("seed %d: poisson(6) #%d = %d, Python gives %d", c.Seed, i, got, want)
			}
		}
		for i, want := range c.Poisson1 {
			if got := s.Poisson(1); got != want {
				t.Fatalf("seed %d: poisson(1) #%d = %d, Python gives %d", c.Seed, i, got, want)
			}
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	a := New(7)
	for range 1000 {
		a.Float64()
	}
	b := New(0)
	if err := b.SetState(a.AppendState(nil)); err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		if x, y := a.Uint32(), b.Uint32(); x != y {
			t.Fatalf("output %d after restoring: %d, want %d", i, y, x)
		}
	}
	if err := b.SetState(make([]byte, StateSize-1)); err == nil {
		t.Fatal("a short state was accepted")
	}
}
