package ortengine

// InputMapping fills one float32 model input of shape [N, len(Features)]:
// column j of the input holds the feature named Features[j].
type InputMapping struct {
	Input    string
	Features []string
}

// CustomSpec describes a model that a user brings: an ONNX file, which
// named features feed each of its inputs, and which output holds the
// scores.
type CustomSpec struct {
	// Path is the ONNX file.
	Path string
	// Inputs maps every input of the model. Each input must be a float32
	// tensor [N, F] with a dynamic N, where F is fixed and equals
	// len(Features) or is dynamic too.
	Inputs []InputMapping
	// Output names the float32 output, [N] or [N, K] with a fixed K, that
	// Score returns. It may be empty when the model has exactly one output.
	Output string
}
