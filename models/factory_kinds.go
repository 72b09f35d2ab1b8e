package models

import "fmt"

// nominalShape is the row shape used to check a configuration before the
// data's shape is known.
var nominalShape = Shape{NumDense: 1}

func withShape(nd, nh, bits *int, sh Shape) {
	*nd, *nh, *bits = sh.NumDense, sh.NumHashed, sh.HashBits
}

func linearBuilder(link Link) func() *builder {
	return func() *builder {
		var c LinearConfig
		o := &c.Optimizer
		b := &builder{}
		b.params = []param{
			p("optimizer", "sgd", "sgd, adagrad or ftrl", parseEnum(&o.Kind, "sgd", "adagrad", "ftrl")),
			p("learning_rate", "0.01 (sgd), 0.1 (adagrad), 0.05 (ftrl α)", "the optimizer's rate", parseFloat(&o.LearningRate)),
			p("schedule", "constant", "sgd's learning-rate schedule: constant, invscaling or optimal", parseEnum(&o.Schedule, "constant", "invscaling", "optimal")),
			p("power_t", "0.5", "invscaling's exponent", parseFloat(&o.PowerT)),
			p("schedule_alpha", "1e-4", "optimal's α", parseFloat(&o.ScheduleAlpha)),
			p("epsilon", "1e-8", "adagrad's ε", parseFloat(&o.Epsilon)),
			p("beta", "1", "ftrl's β", parseFloat(&o.Beta)),
			p("l1", "0", "L1 strength (ftrl only)", parseFloatZero(&c.L1)),
			p("l2", "0", "L2 strength", parseFloatZero(&c.L2)),
			p("clip_gradient", "1e12", "bound on the loss gradient", parseFloat(&c.ClipGradient)),
		}
		configFor := func(sh Shape, classes int) LinearConfig {
			cc := c
			withShape(&cc.NumDense, &cc.NumHashed, &cc.HashBits, sh)
			cc.Link = link
			if link == LinkSoftmax || (link == LinkSigmoid && classes > 2) {
				cc.Link, cc.Classes = LinkSoftmax, max(classes, 2)
			}
			return cc
		}
		b.check = func() error { return configFor(nominalShape, 2).Validate() }
		b.build = func(sh Shape, classes int) (Learner, error) {
			if link != LinkIdentity && classes < 2 {
				return nil, fmt.Errorf("classification needs at least 2 classes, got %d", classes)
			}
			return NewLinear(configFor(sh, classes))
		}
		return b
	}
}

// treeClassifierParams are the parameters of a classification tree, with
// the defaults of d.
func treeClassifierParams(c *HoeffdingTreeConfig, d treeDefaults) []param {
	return []param{
		p("grace_period", fmt.Sprint(d.grace), "weight a leaf sees between split attempts", parseNonZero(&c.GracePeriod)),
		p("max_depth", "unlimited", "depth at which leaves stop growing", parseNonZero(&c.MaxDepth)),
		p("split_criterion", "info_gain", "info_gain or gini", parseEnum(&c.SplitCriterion, "info_gain", "gini")),
		p("delta", fmt.Sprint(d.delta), "significance of the Hoeffding bound", parseFloat(&c.Delta)),
		p("tau", "0.05", "tie threshold", parseFloat(&c.Tau)),
		p("leaf_prediction", "nba", "nba (adaptive naive Bayes), nb or mc (majority class)", parseEnum(&c.LeafPrediction, "nba", "nb", "mc")),
		p("nb_threshold", "0", "weight an nb leaf sees before it uses naive Bayes", parseInt(&c.NBThreshold)),
		p("binary_split", "false", "only binary splits", parseBool(&c.BinarySplit, false)),
		p("min_branch_fraction", "0.01", "share of the weight two branches must each exceed", parseFloat(&c.MinBranchFraction)),
		p("max_share_to_split", "0.99", "a leaf whose majority class holds more does not split", parseFloat(&c.MaxShareToSplit)),
		p("max_size", fmt.Sprint(d.maxSizeMiB), "memory bound in MiB (least promising leaves are deactivated)", parseFloat(&c.MaxSizeMiB)),
		p("memory_estimate_period", fmt.Sprint(d.memoryPeriod), "weight between memory estimates", parseNonZero(&c.MemoryEstimatePeriod)),
		p("stop_mem_management", "false", "stop growing once the memory bound is hit", parseBool(&c.StopMemManagement, false)),
		p("remove_poor_attrs", "false", "drop hopeless attributes' observers (mc leaves)", parseBool(&c.RemovePoorAttrs, false)),
		p("merit_preprune", "true", "\"no split\" is a candidate", parseBool(&c.NoMeritPreprune, true)),
	}
}

func hoeffdingTreeBuilder() *builder {
	var c HoeffdingTreeConfig
	b := &builder{params: treeClassifierParams(&c, htDefaults)}
	configFor := func(sh Shape, classes int) HoeffdingTreeConfig {
		cc := c
		withShape(&cc.NumDense, &cc.NumHashed, &cc.HashBits, sh)
		cc.Classes = classes
		return cc
	}
	b.check = func() error { return configFor(nominalShape, 2).Validate() }
	b.build = func(sh Shape, classes int) (Learner, error) {
		return NewHoeffdingTreeClassifier(configFor(sh, classes))
	}
	return b
}

func hatBuilder() *builder {
	var c HATConfig
	b := &builder{params: append(treeClassifierParams(&c.HoeffdingTreeConfig, htDefaults),
		p("seed", "0", "seed of the bootstrap's random numbers", parseUint64(&c.Seed)),
		p("bootstrap_sampling", "true", "weight the leaves' rows by Poisson(1)", parseBool(&c.NoBootstrap, true)),
		p("drift_window_threshold", "300", "errors a subtree and its alternate monitor before they are compared", parseNonZero(&c.DriftWindowThreshold)),
		p("switch_significance", "0.05", "significance of the switch test", parseFloat(&c.SwitchSignificance)),
		p("adwin_delta", "0.002", "delta of each node's ADWIN", parseFloat(&c.ADWINDelta)),
	)}
	configFor := func(sh Shape, classes int) HATConfig {
		cc := c
		withShape(&cc.NumDense, &cc.NumHashed, &cc.HashBits, sh)
		cc.Classes = classes
		return cc
	}
	b.check = func() error { return configFor(nominalShape, 2).Validate() }
	b.build = func(sh Shape, classes int) (Learner, error) {
		return NewHoeffdingAdaptiveTreeClassifier(configFor(sh, classes))
	}
	return b
}

func forestParams(models *int, maxFeatures *string, lambda, warning, drift *float64, noWarning, noDrift *bool, seed *uint64) []param {
	return []param{
		p("n_models", "10", "number of trees", parseNonZero(models)),
		p("max_features", "sqrt", "each leaf's random subspace: sqrt, log2, all, a count or a share in (0, 1]", parseString(maxFeatures)),
		p("lambda_value", "6", "rate of the bagging's Poisson weights", parseFloat(lambda)),
		p("warning_delta", "0.01", "delta of each tree's ADWIN warning detector", parseFloat(warning)),
		p("drift_delta", "0.001", "delta of each tree's ADWIN drift detector", parseFloat(drift)),
		p("warning_detection", "true", "background trees on warnings", parseBool(noWarning, true)),
		p("drift_detection", "true", "replace trees on drifts", parseBool(noDrift, true)),
		p("seed", "0", "seed of the forest's random numbers", parseUint64(seed)),
	}
}

func arfBuilder() *builder {
	var c ARFConfig
	b := &builder{params: append(treeClassifierParams(&c.HoeffdingTreeConfig, arfDefaults),
		append(forestParams(&c.Models, &c.MaxFeatures, &c.Lambda, &c.WarningDelta, &c.DriftDelta, &c.NoWarning, &c.NoDrift, &c.Seed),
			p("disable_weighted_vote", "false", "average the trees instead of weighting them by accuracy", parseBool(&c.DisableWeightedVote, false)))...)}
	configFor := func(sh Shape, classes int) ARFConfig {
		cc := c
		withShape(&cc.NumDense, &cc.NumHashed, &cc.HashBits, sh)
		cc.Classes = classes
		return cc
	}
	b.check = func() error { return configFor(nominalShape, 2).Validate() }
	b.build = func(sh Shape, classes int) (Learner, error) { return NewARFClassifier(configFor(sh, classes)) }
	return b
}

func treeRegressorParams(c *HoeffdingTreeRegressorConfig, d treeDefaults) []param {
	return []param{
		p("grace_period", fmt.Sprint(d.grace), "weight a leaf sees between split attempts", parseNonZero(&c.GracePeriod)),
		p("max_depth", "unlimited", "depth at which leaves stop growing", parseNonZero(&c.MaxDepth)),
		p("delta", fmt.Sprint(d.delta), "significance of the Hoeffding bound", parseFloat(&c.Delta)),
		p("tau", "0.05", "tie threshold", parseFloat(&c.Tau)),
		p("leaf_prediction", "adaptive", "adaptive, mean or model", parseEnum(&c.LeafPrediction, "adaptive", "mean", "model")),
		p("model_selector_decay", "0.95", "decay of the adaptive leaves' squared errors", parseFloat(&c.ModelSelectorDecay)),
		p("min_samples_split", "5", "weight each side of a split must hold", parseNonZero(&c.MinSamplesSplit)),
		p("binary_split", "false", "only binary splits", parseBool(&c.BinarySplit, false)),
		p("max_size", fmt.Sprint(d.maxSizeMiB), "memory bound in MiB", parseFloat(&c.MaxSizeMiB)),
		p("memory_estimate_period", fmt.Sprint(d.memoryPeriod), "weight between memory estimates", parseNonZero(&c.MemoryEstimatePeriod)),
		p("stop_mem_management", "false", "stop growing once the memory bound is hit", parseBool(&c.StopMemManagement, false)),
		p("remove_poor_attrs", "false", "drop hopeless attributes' splitters", parseBool(&c.RemovePoorAttrs, false)),
		p("merit_preprune", "true", "\"no split\" is a candidate", parseBool(&c.NoMeritPreprune, true)),
		p("leaf_learning_rate", "0.01", "SGD rate of the leaves' linear models", parseFloat(&c.LeafLearningRate)),
		p("splitter_digits", "1", "decimals numeric splitters round values to", parseNonZero(&c.SplitterDigits)),
	}
}

func htrBuilder() *builder {
	var c HoeffdingTreeRegressorConfig
	b := &builder{params: treeRegressorParams(&c, htrDefaults)}
	configFor := func(sh Shape) HoeffdingTreeRegressorConfig {
		cc := c
		withShape(&cc.NumDense, &cc.NumHashed, &cc.HashBits, sh)
		return cc
	}
	b.check = func() error { return configFor(nominalShape).Validate() }
	b.build = func(sh Shape, _ int) (Learner, error) { return NewHoeffdingTreeRegressor(configFor(sh)) }
	return b
}

func arfRegressorBuilder() *builder {
	var c ARFRegressorConfig
	b := &builder{params: append(treeRegressorParams(&c.HoeffdingTreeRegressorConfig, arfRegDefaults),
		append(forestParams(&c.Models, &c.MaxFeatures, &c.Lambda, &c.WarningDelta, &c.DriftDelta, &c.NoWarning, &c.NoDrift, &c.Seed),
			p("aggregation_method", "median", "median or mean", parseChoice(&c.Aggregation, "median", "mean")),
			p("disable_weighted_vote", "true", "false: weight a mean aggregation by the trees' errors", parseBool(&c.WeightedVote, true)))...)}
	configFor := func(sh Shape) ARFRegressorConfig {
		cc := c
		withShape(&cc.NumDense, &cc.NumHashed, &cc.HashBits, sh)
		return cc
	}
	b.check = func() error { return configFor(nominalShape).Validate() }
	b.build = func(sh Shape, _ int) (Learner, error) { return NewARFRegressor(configFor(sh)) }
	return b
}
