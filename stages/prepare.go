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
	return PreparationChainWith(spec, rdb, keys, ChainOptions{})
}

// ChainOptions are what a caller may share between the chains of its
// partitions. The zero value is valid.
type ChainOptions struct {
	// TextPIIMetrics counts the text PII stage's findings; nil: uncounted.
	TextPIIMetrics *TextPIIMetrics
	// TextModel is stages.text.model opened once (OpenTextModel) and
	// shared by the chains; its opener closes it. Nil opens one for this
	// chain alone, which pipeline.CloseStages (Runner.Close) closes.
	TextModel *TextModel
}

// PreparationChainWith is PreparationChain with options. The free-text
// stages (stages.text) run after dedupe: a token classification model
// first (its entity spans feed the PII stage), then the text PII stage,
// then anonymize, then a sequence classification model (which so reads
// the text with its PII rewritten), then featurize (which hashes
// stages.text.tokens).
func PreparationChainWith(spec *pipeline.Spec, rdb redis.UniversalClient, keys Keys, opts ChainOptions) (chain []pipeline.Stage, err error) {
	list := []pipeline.Stage{NewDecode(spec), NewValidate(spec)}
	var textModel *TextModelStage
	defer func() {
		if err != nil && textModel != nil {
			_ = textModel.Close() // a model this chain opened
		}
	}()
	if spec.Stages.Dedupe.On() {
		list = append(list, NewDedupe(spec, rdb))
	}
	if m := spec.Stages.Text.Model; m != nil {
		tm, owned := opts.TextModel, false
		if tm == nil {
			if tm, err = OpenTextModel(spec); err != nil {
				return nil, err
			}
			owned = true
		}
		if textModel, err = NewTextModelStage(spec, tm); err != nil {
			if owned {
				tm.Close()
			}
			return nil, err
		}
		if owned {
			textModel.owned = tm
		}
		if m.Task == pipeline.TaskTokenClassification {
			list = append(list, textModel)
		}
	}
	if spec.HasTextPII() {
		var spans *TextSpans
		if textModel != nil {
			spans = textModel.Spans()
		}
		tp, err := NewTextPII(spec, keys, opts.TextPIIMetrics, spans)
		if err != nil {
			return nil, err
		}
		list = append(list, tp)
	}
	if len(spec.Stages.Anonymize.Fields) > 0 {
		an, err := NewAnonymize(spec, keys)
		if err != nil {
			return nil, err
		}
		list = append(list, an)
	}
	if textModel != nil && spec.Stages.Text.Model.Task == pipeline.TaskSequenceClassification {
		list = append(list, textModel)
	}
	fz, err := NewFeaturize(spec, rdb)
	if err != nil {
		return nil, err
	}
	return append(list, fz), nil
}
