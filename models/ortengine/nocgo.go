//go:build !cgo || noonnx

package ortengine

import (
	"errors"

	"github.com/driftline/driftline/models"
)

// ErrNotBuiltIn reports a driftline binary built without the ONNX Runtime
// engine: with CGO_ENABLED=0, or with the noonnx build tag. Such a binary
// runs every pure-Go learner; a spec that needs ONNX Runtime (model.onnx,
// an MLP on the ONNX Runtime backend) fails at start-up with this error.
var ErrNotBuiltIn = errors.New("ortengine: this driftline binary was built without ONNX Runtime (CGO_ENABLED=0 or the noonnx build tag); use the cgo build, such as the Docker image, to run ONNX models")

// Load reports ErrNotBuiltIn.
func Load(string) (Library, error) { return Library{}, ErrNotBuiltIn }

// Custom is a user's ONNX model; without ONNX Runtime none can be opened.
type Custom struct{}

// NewCustom reports ErrNotBuiltIn.
func NewCustom(Config, []byte, []InputMapping, string) (*Custom, error) { return nil, ErrNotBuiltIn }

// Width is the model's output width.
func (*Custom) Width() int { return 0 }

// Library is the ONNX Runtime library the model runs on.
func (*Custom) Library() Library { return Library{} }

// Score reports ErrNotBuiltIn.
func (*Custom) Score([]float32, int, map[string][]float32) error { return ErrNotBuiltIn }

// Close does nothing.
func (*Custom) Close() error { return nil }

// NewMLP reports ErrNotBuiltIn.
func NewMLP(Config, models.MLPConfig) (*models.MLP, error) { return nil, ErrNotBuiltIn }

// RestoreMLP reports ErrNotBuiltIn.
func RestoreMLP(Config, []byte) (*models.MLP, error) { return nil, ErrNotBuiltIn }

// Text is a transformer on tokenized text; without ONNX Runtime none can
// be opened.
type Text struct{}

// NewText reports ErrNotBuiltIn.
func NewText(Config, []byte, string) (*Text, error) { return nil, ErrNotBuiltIn }

// Classes is K.
func (*Text) Classes() int { return 0 }

// TokenLevel reports whether the logits are per token.
func (*Text) TokenLevel() bool { return false }

// Library is the ONNX Runtime library the engine runs on.
func (*Text) Library() Library { return Library{} }

// Run reports ErrNotBuiltIn.
func (*Text) Run([]float32, TextBatch) error { return ErrNotBuiltIn }

// Close does nothing.
func (*Text) Close() error { return nil }
