// Command ortbench measures ONNX Runtime throughput of MLPs on the CPU and
// on CUDA: scoring at several batch sizes, through ortengine's
// bring-your-own-model path, and the MLP learner's training step
// (ortengine.NewMLP: forward, loss, backward and Adam update in one graph
// run) at several batch sizes. scripts/bench-gpu.sh builds and runs it.
//
// It prints the ONNX Runtime library it loaded (and, for CUDA, the provider
// libraries beside it). When CUDA cannot run, it says so with the engine's
// error, marks the CUDA figures unmeasured, and still prints the CPU
// figures; -require-cuda makes that a failure.
package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/onnxexport"
	"github.com/driftline/driftline/models/ortengine"
)

const inputs = 32

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ortbench:", err)
		os.Exit(1)
	}
}

func run() error {
	lib := flag.String("lib", "", "ONNX Runtime library (default: ORT_LIB, then the setup cache)")
	providers := flag.String("providers", "cpu,cuda", "execution providers to measure")
	widths := flag.String("widths", "64,1024", "MLP hidden widths")
	batches := flag.String("batches", "1,64,4096", "batch sizes for scoring")
	trainBatches := flag.String("train-batches", "256,4096", "batch sizes for the training step (empty: skip it)")
	duration := flag.Duration("duration", time.Second, "measuring time per figure")
	threads := flag.Int("threads", 0, "intra-op threads per session (0: one per CPU)")
	device := flag.Int("device", 0, "CUDA device id")
	requireCUDA := flag.Bool("require-cuda", false, "fail when CUDA is unavailable")
	flag.Parse()

	widthList, err := ints(*widths)
	if err != nil {
		return fmt.Errorf("-widths: %w", err)
	}
	batchList, err := ints(*batches)
	if err != nil {
		return fmt.Errorf("-batches: %w", err)
	}
	var trainList []int
	if *trainBatches != "" {
		if trainList, err = ints(*trainBatches); err != nil {
			return fmt.Errorf("-train-batches: %w", err)
		}
	}
	loaded, err := ortengine.Load(*lib)
	if err != nil {
		return err
	}
	fmt.Printf("onnxruntime %s loaded from %s (%s)\n", loaded.Version, loaded.Path, loaded.Source)
	intraOp := *threads
	if intraOp == 0 {
		intraOp = runtime.NumCPU()
	}
	fmt.Printf("MLP: %d inputs, 2 hidden ReLU layers of the given width, 1 sigmoid output; %d intra-op threads; %v per figure\n\n",
		inputs, intraOp, *duration)
	fmt.Printf("%-5s %6s %6s %14s %12s\n", "ep", "width", "batch", "rows/s", "µs/batch")

	providerList := strings.Split(*providers, ",")
	for _, provider := range providerList {
		cfg := ortengine.Config{ExecutionProvider: provider, DeviceID: *device, IntraOpThreads: intraOp}
		if provider == ortengine.ProviderCUDA {
			describeCUDALibraries(loaded.Path)
		}
		for _, width := range widthList {
			err := measure(cfg, width, batchList, *duration)
			if errors.Is(err, ortengine.ErrCUDAUnavailable) && !*requireCUDA {
				fmt.Printf("cuda  unmeasured: CUDA is unavailable: %v\n", err)
				break
			}
			if err != nil {
				return err
			}
		}
	}
	if len(trainList) == 0 {
		return nil
	}
	fmt.Printf("\ntraining step (ortengine.NewMLP): %d dense inputs, 2 hidden ReLU layers of the given width, 1 sigmoid output, log loss, Adam; one step per batch\n\n",
		inputs)
	fmt.Printf("%-5s %6s %6s %12s %14s %12s\n", "ep", "width", "batch", "steps/s", "rows/s", "ms/step")
	for _, provider := range providerList {
		cfg := ortengine.Config{ExecutionProvider: provider, DeviceID: *device, IntraOpThreads: intraOp}
		for _, width := range widthList {
			err := measureTraining(cfg, width, trainList, *duration)
			if errors.Is(err, ortengine.ErrCUDAUnavailable) && !*requireCUDA {
				fmt.Printf("cuda  unmeasured: CUDA is unavailable: %v\n", err)
				break
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func measure(cfg ortengine.Config, width int, batches []int, duration time.Duration) error {
	rng := rand.New(rand.NewPCG(uint64(width), 1))
	mlp := onnxexport.MLP{Name: fmt.Sprintf("mlp%d", width), Input: "x", Output: "p", Layers: []onnxexport.DenseLayer{
		layer(rng, inputs, width, onnxexport.ActivationReLU),
		layer(rng, width, width, onnxexport.ActivationReLU),
		layer(rng, width, 1, onnxexport.ActivationSigmoid),
	}}
	model, err := mlp.Model()
	if err != nil {
		return err
	}
	bytes, err := model.Marshal()
	if err != nil {
		return err
	}
	features := make([]string, inputs)
	for i := range features {
		features[i] = "f" + strconv.Itoa(i)
	}
	engine, err := ortengine.NewCustom(cfg, bytes, []ortengine.InputMapping{{Input: "x", Features: features}}, "")
	if err != nil {
		return err
	}
	defer engine.Close()

	maxBatch := 0
	for _, b := range batches {
		maxBatch = max(maxBatch, b)
	}
	columns := make(map[string][]float32, inputs)
	for _, f := range features {
		col := make([]float32, maxBatch)
		for i := range col {
			col[i] = float32(rng.NormFloat64())
		}
		columns[f] = col
	}
	dst := make([]float32, maxBatch)
	for _, batch := range batches {
		for range 3 { // warm up: first runs allocate and, on CUDA, copy weights
			if err := engine.Score(dst, batch, columns); err != nil {
				return err
			}
		}
		calls := 0
		start := time.Now()
		for time.Since(start) < duration {
			if err := engine.Score(dst, batch, columns); err != nil {
				return err
			}
			calls++
		}
		elapsed := time.Since(start)
		fmt.Printf("%-5s %6d %6d %14.0f %12.1f\n", cfg.ExecutionProvider, width, batch,
			float64(calls*batch)/elapsed.Seconds(), float64(elapsed.Microseconds())/float64(calls))
	}
	return nil
}

// measureTraining times the MLP learner's training step on ONNX Runtime:
// Learn on exactly one batch, so each call is one step.
func measureTraining(cfg ortengine.Config, width int, batches []int, duration time.Duration) error {
	for _, batch := range batches {
		mc := models.MLPConfig{Link: models.LinkSigmoid, NumDense: inputs, Hidden: []int{width, width}, BatchSize: batch, Seed: 1}
		m, err := ortengine.NewMLP(cfg, mc)
		if err != nil {
			return err
		}
		rng := rand.New(rand.NewPCG(uint64(width), uint64(batch)))
		rows := &models.Rows{N: batch, NumDense: inputs, Dense: make([]float32, batch*inputs)}
		y := make([]float32, batch)
		for i := range batch {
			dense := rows.DenseRow(i)
			for j := range dense {
				dense[j] = float32(rng.NormFloat64())
			}
			if math.Abs(float64(dense[0])) < 0.7 {
				y[i] = 1
			}
		}
		for range 2 { // warm up: the first step wraps the buffers, and CUDA allocates
			if err := m.Learn(rows, y); err != nil {
				m.Close()
				return err
			}
		}
		steps := 0
		start := time.Now()
		for steps == 0 || time.Since(start) < duration {
			if err := m.Learn(rows, y); err != nil {
				m.Close()
				return err
			}
			steps++
		}
		elapsed := time.Since(start)
		fmt.Printf("%-5s %6d %6d %12.2f %14.0f %12.2f\n", cfg.ExecutionProvider, width, batch,
			float64(steps)/elapsed.Seconds(), float64(steps*batch)/elapsed.Seconds(), elapsed.Seconds()*1000/float64(steps))
		if err := m.Close(); err != nil {
			return err
		}
	}
	return nil
}

func layer(rng *rand.Rand, in, out int, act onnxexport.Activation) onnxexport.DenseLayer {
	l := onnxexport.DenseLayer{In: in, Out: out, W: make([]float32, in*out), B: make([]float32, out), Activation: act}
	scale := 1 / math.Sqrt(float64(in))
	for i := range l.W {
		l.W[i] = float32(rng.NormFloat64() * scale)
	}
	return l
}

// describeCUDALibraries prints which CUDA provider libraries sit beside the
// core library, where ONNX Runtime looks for them.
func describeCUDALibraries(core string) {
	for _, name := range []string{"libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so"} {
		path := filepath.Join(filepath.Dir(core), name)
		if _, err := os.Stat(path); err != nil {
			fmt.Printf("cuda provider library %s: missing\n", path)
		} else {
			fmt.Printf("cuda provider library %s: present\n", path)
		}
	}
}

func ints(list string) ([]int, error) {
	var out []int
	for _, s := range strings.Split(list, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", s)
		}
		out = append(out, v)
	}
	return out, nil
}
