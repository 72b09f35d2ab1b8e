package stages

import (
	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/pipeline"
)

// PreparationChain builds one partition's stages up to scoring — decode,
// validate, dedupe (unless stages.dedupe.enabled is false), anonymize (when
// the spec has operators) and featurize — so that live traffic, replay and
// retraining run the same code path. rdb holds the stateful stages' state
// (dedupe set, entity aggregates) under spec.redis.key_prefix; it may be nil
// when neither runs. The stages are not safe for concurrent use: build one
// chain per partition loop.
func PreparationChain(spec *pipeline.Spec, rdb redis.UniversalClient, keys Keys) ([]pipeline.Stage, error) {
	list := []pipeline.Stage{NewDecode(spec), NewValidate(spec)}
	if spec.Stages.Dedupe.On() {
		list = append(list, NewDedupe(spec, rdb))
	}
	if len(spec.Stages.Anonymize.Fields) > 0 {
		an, err := NewAnonymize(spec, keys)
		if err != nil {
			return nil, err
		}
		list = append(list, an)
	}
	fz, err := NewFeaturize(spec, rdb)
	if err != nil {
		return nil, err
	}
	return append(list, fz), nil
}
