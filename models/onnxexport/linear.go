package onnxexport

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/driftline/driftline/models"
)

// Names of the inputs and output of a graph written by Export.
const (
	// DenseInput is the float32 [N, NumDense] input of raw (unscaled) dense
	// values, laid out as models.Rows.Dense. NaN and ±Inf are missing values
	// and contribute nothing.
	DenseInput = "dense"
	// HashedInput is the int32 [N, NumHashed] input of hashed indices, laid
	// out exactly as models.Rows.Hashed (so a caller passes that slice as
	// is): an index in [0, 2^HashBits) selects a bucket, any other value
	// (by convention -1) is absent and contributes nothing.
	HashedInput = "hashed"
	// ScoreOutput is the float32 [N, K] output: P(y=1) for the sigmoid link,
	// K class probabilities for softmax, the prediction for identity.
	ScoreOutput = "score"
	// BatchDim is the symbolic name of the batch dimension.
	BatchDim = "N"
)

// Keys of the metadata_props that Export writes.
const (
	PropModelName      = "driftline.model.name"
	PropModelVersion   = "driftline.model.version"
	PropLink           = "driftline.link"
	PropClasses        = "driftline.classes"
	PropHashBits       = "driftline.hash_bits"
	PropDenseFeatures  = "driftline.features.dense"  // JSON array of names
	PropHashedFeatures = "driftline.features.hashed" // JSON array of names
)

// Metadata describes an exported model for the registry and for humans.
type Metadata struct {
	// ModelName and ModelVersion identify the model; both are required.
	ModelName    string
	ModelVersion string
	// DenseFeatures names the dense columns in order; empty, or exactly
	// NumDense names.
	DenseFeatures []string
	// HashedFeatures names the hashed (categorical) columns in order; empty,
	// or exactly NumHashed names.
	HashedFeatures []string
}

// Signature is what a scorer needs to know about an exported model's
// interface: the pinned opset, and the inputs and outputs in graph order.
type Signature struct {
	Opset   int64
	Inputs  []TensorSpec
	Outputs []TensorSpec
}

// LinearSignature returns the signature Export declares for p: the dense
// input when NumDense > 0, the hashed input when NumHashed > 0, and the
// score output, each with the dynamic batch dimension first.
func LinearSignature(p *models.LinearParams) Signature {
	batch := Dim{Param: BatchDim}
	var s Signature
	s.Opset = Opset
	if p.NumDense > 0 {
		s.Inputs = append(s.Inputs, TensorSpec{Name: DenseInput, Type: Float32, Shape: []Dim{batch, {Value: int64(p.NumDense)}}})
	}
	if p.NumHashed > 0 {
		s.Inputs = append(s.Inputs, TensorSpec{Name: HashedInput, Type: Int32, Shape: []Dim{batch, {Value: int64(p.NumHashed)}}})
	}
	s.Outputs = []TensorSpec{{Name: ScoreOutput, Type: Float32, Shape: []Dim{batch, {Value: int64(p.Classes)}}}}
	return s
}

// maxHashBits bounds the hashed weight table the exporter will embed.
const maxHashBits = 28

// Validate checks that p is a well-formed linear model: consistent sizes, a
// known link with a matching class count, and no zero Std.
func Validate(p *models.LinearParams) error {
	switch {
	case p.NumDense < 0 || p.NumHashed < 0:
		return fmt.Errorf("onnxexport: negative feature count (dense %d, hashed %d)", p.NumDense, p.NumHashed)
	case p.NumDense == 0 && p.NumHashed == 0:
		return errors.New("onnxexport: model has no features")
	case p.HashBits < 0 || p.HashBits > maxHashBits:
		return fmt.Errorf("onnxexport: hash bits %d outside [0, %d]", p.HashBits, maxHashBits)
	}
	switch p.Link {
	case models.LinkIdentity, models.LinkSigmoid:
		if p.Classes != 1 {
			return fmt.Errorf("onnxexport: %s link needs 1 class, got %d", p.Link, p.Classes)
		}
	case models.LinkSoftmax:
		if p.Classes < 2 {
			return fmt.Errorf("onnxexport: softmax link needs at least 2 classes, got %d", p.Classes)
		}
	default:
		return fmt.Errorf("onnxexport: unknown link %d", p.Link)
	}
	switch {
	case len(p.W) != p.Classes*p.Dim():
		return fmt.Errorf("onnxexport: %d weights, want classes×dim = %d×%d", len(p.W), p.Classes, p.Dim())
	case len(p.B) != p.Classes:
		return fmt.Errorf("onnxexport: %d intercepts, want %d", len(p.B), p.Classes)
	case len(p.Mean) != p.NumDense || len(p.Std) != p.NumDense:
		return fmt.Errorf("onnxexport: scaler has %d means and %d stds, want %d", len(p.Mean), len(p.Std), p.NumDense)
	}
	for j, s := range p.Std {
		if s == 0 {
			return fmt.Errorf("onnxexport: std of dense value %d is zero", j)
		}
	}
	return nil
}

// Export encodes p as an ONNX model (opset Opset) whose graph computes, for a
// batch, what a models.Learner with these parameters predicts:
//
//	scaled = (dense - Mean) / Std, and 0 where dense is NaN or ±Inf
//	margin = MatMul(scaled, Wdenseᵀ)
//	       + ReduceSum_c Gather(Whashᵀ ++ [0], Min(Max(hashed, -1), 2^HashBits))
//	       + B
//	score  = Sigmoid(margin) | Softmax(margin, axis -1) | Clip(margin, ±MaxFloat32)
//
// The hashed weight table gets one extra zero row at index 2^HashBits.
// Clamping maps every out-of-range index to -1 (which Gather reads as that
// last row) or to 2^HashBits, so an absent index adds zero and never fails
// the batch. The inputs and output are those of LinearSignature(p); meta
// goes to metadata_props together with the link, class count and hash bits.
// p is only read.
//
// ONNX Runtime computes in float32 where the Go learners use float64, so
// scores agree to about 1e-6 for inputs within a few thousand standard
// deviations of the mean, not bit for bit.
func Export(p *models.LinearParams, meta Metadata) ([]byte, error) {
	if err := Validate(p); err != nil {
		return nil, err
	}
	if meta.ModelName == "" || meta.ModelVersion == "" {
		return nil, errors.New("onnxexport: metadata needs a model name and version")
	}
	if len(meta.DenseFeatures) != 0 && len(meta.DenseFeatures) != p.NumDense {
		return nil, fmt.Errorf("onnxexport: %d dense feature names for %d dense values", len(meta.DenseFeatures), p.NumDense)
	}
	if len(meta.HashedFeatures) != 0 && len(meta.HashedFeatures) != p.NumHashed {
		return nil, fmt.Errorf("onnxexport: %d hashed feature names for %d hashed values", len(meta.HashedFeatures), p.NumHashed)
	}

	sig := LinearSignature(p)
	g := Graph{Name: meta.ModelName, Inputs: sig.Inputs, Outputs: sig.Outputs}
	k, dim := p.Classes, p.Dim()
	var margins []string
	if p.NumDense > 0 {
		d := p.NumDense
		wt := make([]float32, d*k)
		for c := 0; c < k; c++ {
			for j := 0; j < d; j++ {
				wt[j*k+c] = p.W[c*dim+j]
			}
		}
		g.Initializers = append(g.Initializers,
			Tensor{Name: "scaler_mean", Dims: []int64{int64(d)}, Float32s: append([]float32(nil), p.Mean...)},
			Tensor{Name: "scaler_std", Dims: []int64{int64(d)}, Float32s: append([]float32(nil), p.Std...)},
			Tensor{Name: "w_dense_t", Dims: []int64{int64(d), int64(k)}, Float32s: wt},
		)
		g.Initializers = append(g.Initializers, Tensor{Name: "zero", Float32s: []float32{0}})
		g.Nodes = append(g.Nodes,
			Node{Op: "Sub", Name: "center", Inputs: []string{DenseInput, "scaler_mean"}, Outputs: []string{"centered"}},
			Node{Op: "Div", Name: "scale", Inputs: []string{"centered", "scaler_std"}, Outputs: []string{"scaled_raw"}},
			Node{Op: "IsNaN", Name: "is_nan", Inputs: []string{DenseInput}, Outputs: []string{"dense_nan"}},
			Node{Op: "IsInf", Name: "is_inf", Inputs: []string{DenseInput}, Outputs: []string{"dense_inf"}},
			Node{Op: "Or", Name: "is_missing", Inputs: []string{"dense_nan", "dense_inf"}, Outputs: []string{"dense_missing"}},
			Node{Op: "Where", Name: "zero_missing", Inputs: []string{"dense_missing", "zero", "scaled_raw"}, Outputs: []string{"scaled"}},
			Node{Op: "MatMul", Name: "dense_margin", Inputs: []string{"scaled", "w_dense_t"}, Outputs: []string{"margin_dense"}},
		)
		margins = append(margins, "margin_dense")
	}
	if p.NumHashed > 0 {
		buckets := 1 << p.HashBits
		wt := make([]float32, (buckets+1)*k) // last row stays zero: "absent"
		for c := 0; c < k; c++ {
			for h := 0; h < buckets; h++ {
				wt[h*k+c] = p.W[c*dim+p.NumDense+h]
			}
		}
		g.Initializers = append(g.Initializers,
			Tensor{Name: "w_hashed_t", Dims: []int64{int64(buckets + 1), int64(k)}, Float32s: wt},
			Tensor{Name: "below_range", Int32s: []int32{-1}},
			Tensor{Name: "above_range", Int32s: []int32{int32(buckets)}},
			Tensor{Name: "hashed_axis", Dims: []int64{1}, Int64s: []int64{1}},
		)
		g.Nodes = append(g.Nodes,
			Node{Op: "Max", Name: "clamp_below", Inputs: []string{HashedInput, "below_range"}, Outputs: []string{"hashed_at_least"}},
			Node{Op: "Min", Name: "clamp_above", Inputs: []string{"hashed_at_least", "above_range"}, Outputs: []string{"hashed_clamped"}},
			Node{Op: "Gather", Name: "lookup", Inputs: []string{"w_hashed_t", "hashed_clamped"}, Outputs: []string{"hashed_weights"}, Attrs: []Attr{IntAttr("axis", 0)}},
			Node{Op: "ReduceSum", Name: "hashed_margin", Inputs: []string{"hashed_weights", "hashed_axis"}, Outputs: []string{"margin_hashed"}, Attrs: []Attr{IntAttr("keepdims", 0)}},
		)
		margins = append(margins, "margin_hashed")
	}
	sum := margins[0]
	if len(margins) == 2 {
		g.Nodes = append(g.Nodes, Node{Op: "Add", Name: "sum_margins", Inputs: margins, Outputs: []string{"margin_features"}})
		sum = "margin_features"
	}
	g.Initializers = append(g.Initializers, Tensor{Name: "intercept", Dims: []int64{int64(k)}, Float32s: append([]float32(nil), p.B...)})
	switch p.Link {
	case models.LinkIdentity:
		g.Initializers = append(g.Initializers,
			Tensor{Name: "lowest", Float32s: []float32{-math.MaxFloat32}},
			Tensor{Name: "highest", Float32s: []float32{math.MaxFloat32}},
		)
		g.Nodes = append(g.Nodes,
			Node{Op: "Add", Name: "add_intercept", Inputs: []string{sum, "intercept"}, Outputs: []string{"margin"}},
			Node{Op: "Clip", Name: "link", Inputs: []string{"margin", "lowest", "highest"}, Outputs: []string{ScoreOutput}},
		)
	case models.LinkSigmoid:
		g.Nodes = append(g.Nodes,
			Node{Op: "Add", Name: "add_intercept", Inputs: []string{sum, "intercept"}, Outputs: []string{"margin"}},
			Node{Op: "Sigmoid", Name: "link", Inputs: []string{"margin"}, Outputs: []string{ScoreOutput}},
		)
	case models.LinkSoftmax:
		g.Nodes = append(g.Nodes,
			Node{Op: "Add", Name: "add_intercept", Inputs: []string{sum, "intercept"}, Outputs: []string{"margin"}},
			Node{Op: "Softmax", Name: "link", Inputs: []string{"margin"}, Outputs: []string{ScoreOutput}, Attrs: []Attr{IntAttr("axis", -1)}},
		)
	}

	dense, err := json.Marshal(nonNil(meta.DenseFeatures))
	if err != nil {
		return nil, fmt.Errorf("onnxexport: encode dense feature names: %w", err)
	}
	hashed, err := json.Marshal(nonNil(meta.HashedFeatures))
	if err != nil {
		return nil, fmt.Errorf("onnxexport: encode hashed feature names: %w", err)
	}
	m := Model{
		Graph:     g,
		DocString: fmt.Sprintf("driftline linear model %s version %s (%s link)", meta.ModelName, meta.ModelVersion, p.Link),
		Props: []Prop{
			{PropModelName, meta.ModelName},
			{PropModelVersion, meta.ModelVersion},
			{PropLink, p.Link.String()},
			{PropClasses, strconv.Itoa(p.Classes)},
			{PropHashBits, strconv.Itoa(p.HashBits)},
			{PropDenseFeatures, string(dense)},
			{PropHashedFeatures, string(hashed)},
		},
	}
	return m.Marshal()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
