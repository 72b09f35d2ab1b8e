package app

// The lead's branch defines LearnerSignature and specHash in
// internal/app/governance.go; these copies stand in until it is merged.

import (
	"crypto/sha256"
	"encoding/hex"

	"go.yaml.in/yaml/v3"

	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
)

func LearnerSignature(fz *stages.Featurize) registry.Signature {
	return registry.Signature{
		Inputs: []registry.Tensor{{Name: "dense", DType: "float32", Shape: []int64{-1, int64(fz.NumDense())}},
			{Name: "hashed", DType: "int32", Shape: []int64{-1, int64(fz.NumHashed())}}},
		Outputs: []registry.Tensor{{Name: "score", DType: "float32", Shape: []int64{-1, 1}}}}
}

func specHash(spec *pipeline.Spec) string {
	c := *spec
	c.Kafka.Brokers, c.Redis, c.Admin = nil, pipeline.RedisSpec{}, pipeline.AdminSpec{}
	b, err := yaml.Marshal(&c)
	if err != nil {
		return ""
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
