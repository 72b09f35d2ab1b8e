package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/onnxexport"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
)

// ExportONNX turns a learner snapshot trained under spec into an ONNX
// model for the scoring path and users' tooling, with the spec's model name,
// version and feature names in its metadata. info describes what was
// written, in words. The learner must take the features the spec's
// featurize stage gives.
//
// Linear learners export exactly. Trees and forests export as ai.onnx.ml
// tree ensembles; a tree whose leaves predict with naive Bayes or a linear
// model cannot be expressed so, and is refused unless approximate is set,
// when such leaves export their class distribution or mean instead.
func ExportONNX(spec *pipeline.Spec, snapshot []byte, version string, approximate bool) (model []byte, info string, err error) {
	if spec.Model.ONNX != nil {
		return nil, "", errors.New("model.onnx: the spec's model is a bring-your-own ONNX file; there is no learner to export")
	}
	learner, err := models.UnmarshalLearner(snapshot)
	if err != nil {
		return nil, "", err
	}
	dense, hashed := stages.FeatureNames(spec)
	meta := onnxexport.Metadata{ModelName: spec.Model.Name, ModelVersion: version, DenseFeatures: dense, HashedFeatures: hashed}
	if tm, ok := learner.(models.TreeModel); ok {
		if sh := tm.Shape(); sh.NumDense != len(dense) || sh.NumHashed != len(hashed) {
			return nil, "", fmt.Errorf("the learner takes %d dense and %d hashed values, the spec's stages.featurize gives %d and %d",
				sh.NumDense, sh.NumHashed, len(dense), len(hashed))
		}
		ens, err := tm.Ensemble(approximate)
		if errors.Is(err, models.ErrNotExpressible) {
			return nil, "", fmt.Errorf("%w (pass --approximate to export their class distributions or means)", err)
		}
		if err != nil {
			return nil, "", err
		}
		if model, err = onnxexport.ExportTrees(&ens, meta); err != nil {
			return nil, "", fmt.Errorf("export: %w", err)
		}
		return model, fmt.Sprintf("a %T as a tree ensemble, %d dense and %d hashed inputs, opset %d", learner, len(dense), len(hashed), onnxexport.Opset), nil
	}
	linear, ok := learner.(models.LinearModel)
	if !ok {
		return nil, "", fmt.Errorf("the learner is a %T; models export writes linear models, trees and forests", learner)
	}
	p := linear.Params()
	if p.NumDense != len(dense) || p.NumHashed != len(hashed) {
		return nil, "", fmt.Errorf("the learner takes %d dense and %d hashed values, the spec's stages.featurize gives %d and %d",
			p.NumDense, p.NumHashed, len(dense), len(hashed))
	}
	if p.NumHashed > 0 && p.HashBits != spec.Stages.Featurize.HashBits {
		return nil, "", fmt.Errorf("the learner hashes to %d bits, stages.featurize.hash_bits is %d", p.HashBits, spec.Stages.Featurize.HashBits)
	}
	if model, err = onnxexport.Export(&p, meta); err != nil {
		return nil, "", fmt.Errorf("export: %w", err)
	}
	return model, fmt.Sprintf("%s link, %d output(s) per row, %d dense and %d hashed inputs, opset %d",
		p.Link, p.Classes, p.NumDense, p.NumHashed, onnxexport.Opset), nil
}

// WriteFileAtomic writes data to a temporary file beside path and renames
// it over path, so that a reader never sees half a model.
func WriteFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}
