//go:build cgo && !noonnx

package ortengine

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/onnxexport"
)

func TestMissingLibraryErrorSaysHowToGetIt(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	t.Run("ORT_LIB", func(t *testing.T) {
		t.Setenv(LibraryEnv, missing)
		_, _, err := resolveLibrary("")
		assertMissingLibrary(t, err, missing, "from ORT_LIB")
	})
	t.Run("setup cache", func(t *testing.T) {
		t.Setenv(LibraryEnv, "")
		cache := t.TempDir()
		t.Setenv("DRIFTLINE_CACHE", cache)
		_, _, err := resolveLibrary("")
		want := filepath.Join(cache, "onnxruntime", DefaultVersion, "libonnxruntime.so.1")
		assertMissingLibrary(t, err, want, "from setup cache")
	})
	t.Run("config", func(t *testing.T) {
		_, _, err := resolveLibrary(missing)
		assertMissingLibrary(t, err, missing, "from config")
	})
}

func assertMissingLibrary(t *testing.T, err error, path, source string) {
	t.Helper()
	if !errors.Is(err, ErrLibraryNotFound) {
		t.Fatalf("error %v does not wrap ErrLibraryNotFound", err)
	}
	for _, want := range []string{path, source, "scripts/setup-ort.sh", "ORT_LIB"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestSetupScriptInstallsDefaultVersion(t *testing.T) {
	script, err := os.ReadFile("../../scripts/setup-ort.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ORT_VERSION=(\S+)$`).FindSubmatch(script)
	if m == nil || string(m[1]) != DefaultVersion {
		t.Fatalf("scripts/setup-ort.sh pins ORT_VERSION %q, DefaultVersion is %q", m, DefaultVersion)
	}
}

func TestLoadRefusesASecondLibrary(t *testing.T) {
	lib, err := Load("")
	if err != nil {
		t.Fatalf("load (the ONNX Runtime tests need the real library): %v", err)
	}
	if !strings.HasPrefix(lib.Version, "1.") || lib.Path == "" || lib.Source == "" {
		t.Fatalf("loaded library %+v", lib)
	}
	again, err := Load(lib.Path)
	if err != nil || again != lib {
		t.Fatalf("second load of the same library: %+v, %v", again, err)
	}
	other := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	if _, err := Load(other); err == nil || !strings.Contains(err.Error(), "already loaded") {
		t.Fatalf("load of another library: error %v, want one saying a library is already loaded", err)
	}
}

// TestCUDAConfigFailsClearlyOrRunsOnTheGPU asks for the CUDA provider. On a
// machine without a usable CUDA provider (this project's CI) it must fail
// with ErrCUDAUnavailable and say why and what to do; where CUDA works it
// must score like the CPU.
func TestCUDAConfigFailsClearlyOrRunsOnTheGPU(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	p := randomParams(rng, models.LinkSigmoid, 1, 5, 2, 8)
	model := exportLinear(t, p)
	l, err := NewLinear(Config{ExecutionProvider: ProviderCUDA, DeviceID: 0}, model)
	if err != nil {
		if !errors.Is(err, ErrCUDAUnavailable) {
			t.Fatalf("error %v does not wrap ErrCUDAUnavailable", err)
		}
		for _, want := range []string{"device 0", "libonnxruntime_providers_cuda.so", "setup-ort.sh --cuda", `"cpu"`} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
		t.Logf("cuda unavailable, as expected without a GPU: %v", err)
		return
	}
	defer l.Close()
	rows := rowsFor(rng, p, 500)
	want := make([]float32, rows.N)
	referenceScore(want, p, rows)
	got := make([]float32, rows.N)
	if err := l.Score(got, rows); err != nil {
		t.Fatalf("score on cuda: %v", err)
	}
	assertClose(t, got, want, 1e-5)
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	for _, c := range []Config{
		{ExecutionProvider: "tpu"},
		{ExecutionProvider: ProviderCUDA, DeviceID: -1},
		{PoolSize: -1},
		{IntraOpThreads: -2},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
		if _, err := NewLinear(c, nil); err == nil {
			t.Errorf("NewLinear(%+v): no error", c)
		}
	}
}

func TestExportedMetadataReadByONNXRuntime(t *testing.T) {
	if _, err := Load(""); err != nil {
		t.Fatalf("load (the ONNX Runtime tests need the real library): %v", err)
	}
	p := randomParams(rand.New(rand.NewPCG(1, 1)), models.LinkSoftmax, 3, 2, 1, 4)
	model, err := onnxexport.Export(p, onnxexport.Metadata{
		ModelName: "churn", ModelVersion: "7",
		DenseFeatures: []string{"age", "spend"}, HashedFeatures: []string{"country"},
	})
	if err != nil {
		t.Fatal(err)
	}
	meta, err := ort.GetModelMetadataWithONNXData(model)
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	defer meta.Destroy()
	for key, want := range map[string]string{
		onnxexport.PropModelName:      "churn",
		onnxexport.PropModelVersion:   "7",
		onnxexport.PropLink:           "softmax",
		onnxexport.PropClasses:        "3",
		onnxexport.PropHashBits:       "4",
		onnxexport.PropDenseFeatures:  `["age","spend"]`,
		onnxexport.PropHashedFeatures: `["country"]`,
	} {
		got, ok, err := meta.LookupCustomMetadataMap(key)
		if err != nil || !ok || got != want {
			t.Errorf("metadata %s = %q (present %v, err %v), want %q", key, got, ok, err, want)
		}
	}
	if producer, err := meta.GetProducerName(); err != nil || producer != onnxexport.Producer {
		t.Errorf("producer %q (%v), want %q", producer, err, onnxexport.Producer)
	}
}

func TestLinearConcurrentScoresOverAPool(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	p := randomParams(rng, models.LinkSoftmax, 3, 6, 2, 8)
	l := newLinear(t, Config{PoolSize: 3}, exportLinear(t, p))
	const goroutines, calls = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		rows := rowsFor(rand.New(rand.NewPCG(uint64(g), 0)), p, 1+g*37)
		want := make([]float32, rows.N*3)
		referenceScore(want, p, rows)
		wg.Go(func() {
			got := make([]float32, rows.N*3)
			for range calls {
				clear(got)
				if err := l.Score(got, rows); err != nil {
					errs <- err
					return
				}
				for i := range want {
					if d := got[i] - want[i]; d > 1e-5 || d < -1e-5 {
						errs <- errors.New("concurrent score differs from the reference")
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestLinearRejectsMismatchedBatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	p := randomParams(rng, models.LinkSigmoid, 1, 4, 2, 6)
	l := newLinear(t, Config{}, exportLinear(t, p))
	rows := rowsFor(rng, p, 10)
	dst := make([]float32, 10)
	cases := map[string]struct {
		dst  []float32
		rows models.Rows
	}{
		"short dst":          {dst[:9], *rows},
		"dense width":        {dst, models.Rows{N: 10, NumDense: 3, NumHashed: 2, Dense: rows.Dense, Hashed: rows.Hashed}},
		"hashed width":       {dst, models.Rows{N: 10, NumDense: 4, NumHashed: 1, Dense: rows.Dense, Hashed: rows.Hashed}},
		"short dense buffer": {dst, models.Rows{N: 10, NumDense: 4, NumHashed: 2, Dense: rows.Dense[:39], Hashed: rows.Hashed}},
	}
	for name, tc := range cases {
		if err := l.Score(tc.dst, &tc.rows); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := l.Score(nil, &models.Rows{NumDense: 4, NumHashed: 2}); err != nil {
		t.Errorf("empty batch: %v", err)
	}
}

func TestLinearRejectsModelsWithAnotherSignature(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	mlp := onnxexport.MLP{Name: "mlp", Input: "x", Output: "y", Layers: []onnxexport.DenseLayer{randomLayer(rng, 3, 2, onnxexport.ActivationNone)}}
	m, err := mlp.Model()
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if l, err := NewLinear(Config{}, b); err == nil {
		l.Close()
		t.Fatal("an MLP was accepted as an exported linear model")
	}
}

func TestCloseIsIdempotentAndStopsScoring(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	p := randomParams(rng, models.LinkIdentity, 1, 2, 0, 0)
	l, err := NewLinear(Config{PoolSize: 2}, exportLinear(t, p))
	if err != nil {
		t.Fatalf("new linear engine (the ONNX Runtime tests need the real library): %v", err)
	}
	for range 2 {
		if err := l.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
	}
	rows := rowsFor(rng, p, 3)
	if err := l.Score(make([]float32, 3), rows); !errors.Is(err, ErrClosed) {
		t.Fatalf("score after close: %v, want ErrClosed", err)
	}
}
