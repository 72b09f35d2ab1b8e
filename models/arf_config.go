package models

import (
	"fmt"
	"math"
	"strconv"
)

// ARFConfig configures an ARFClassifier. The embedded tree configuration
// applies to every member tree; its zero fields take River 0.26.1's
// ARFClassifier defaults, which differ from a single tree's in three
// places: GracePeriod 50, Delta 0.01 and MemoryEstimatePeriod 2,000,000.
// A zero forest field takes the default stated on it.
type ARFConfig struct {
	HoeffdingTreeConfig
	// Models is the number of trees, in [1, 1000]. Default 10.
	Models int
	// MaxFeatures is the size of each leaf's random attribute subspace:
	// "sqrt" (the default) or "log2" of the row's attribute count
	// (NumDense + NumHashed), rounded; "all"; a count such as "3"; or a
	// share such as "0.5" (of the count, rounded down). The result is
	// clamped to [1, count], as River does.
	MaxFeatures string
	// Lambda is the rate of the Poisson weights of online bagging, > 0.
	// Default 6 (leveraging bagging).
	Lambda float64
	// DisableWeightedVote averages the trees' probabilities instead of
	// weighting each by its prequential accuracy.
	DisableWeightedVote bool
	// WarningDelta is the delta of each tree's ADWIN warning detector,
	// whose alarm starts a background tree. Default 0.01.
	WarningDelta float64
	// DriftDelta is the delta of each tree's ADWIN drift detector, whose
	// alarm replaces the tree (by its background tree, if any). Default
	// 0.001.
	DriftDelta float64
	// NoWarning disables the warning detectors and background trees; NoDrift
	// disables the drift detectors (River: NoDrift()).
	NoWarning, NoDrift bool
	// Seed seeds the forest's random numbers (bagging weights and
	// subspaces), drawn as River draws them. Default 0.
	Seed uint64
}

// River's ARFClassifier defaults.
const (
	DefaultARFModels       = 10
	DefaultARFLambda       = 6
	DefaultARFWarningDelta = 0.01
	DefaultARFDriftDelta   = 0.001
	DefaultARFGracePeriod  = 50
	DefaultARFDelta        = 0.01
	DefaultARFMemoryPeriod = 2_000_000
	MaxARFModels           = 1000
)

var arfDefaults = treeDefaults{DefaultARFGracePeriod, DefaultARFDelta, DefaultTreeMaxSizeMiB, DefaultARFMemoryPeriod}

// Validate reports whether the configuration, with its defaults applied,
// is usable by NewARFClassifier.
func (c ARFConfig) Validate() error {
	_, err := c.resolve()
	return err
}

func (c ARFConfig) resolve() (ARFConfig, error) {
	tc, err := c.HoeffdingTreeConfig.resolve(arfDefaults)
	if err != nil {
		return c, err
	}
	c.HoeffdingTreeConfig = tc
	if err := resolveForest(&c.Models, &c.MaxFeatures, &c.Lambda, &c.WarningDelta, &c.DriftDelta); err != nil {
		return c, err
	}
	if _, err := subspaceSize(c.MaxFeatures, c.NumDense+c.NumHashed); err != nil {
		return c, err
	}
	return c, nil
}

// resolveForest applies and checks the defaults every forest shares.
func resolveForest(models *int, maxFeatures *string, lambda, warning, drift *float64) error {
	if *models == 0 {
		*models = DefaultARFModels
	}
	if *maxFeatures == "" {
		*maxFeatures = "sqrt"
	}
	orDefault(lambda, DefaultARFLambda)
	orDefault(warning, DefaultARFWarningDelta)
	orDefault(drift, DefaultARFDriftDelta)
	switch {
	case *models < 1 || *models > MaxARFModels:
		return fmt.Errorf("models: forest models %d outside [1, %d]", *models, MaxARFModels)
	case !(*lambda > 0) || *lambda > 100:
		return fmt.Errorf("models: lambda %v outside (0, 100]", *lambda)
	case !(*warning > 0 && *warning < 1):
		return fmt.Errorf("models: warning delta %v outside (0, 1)", *warning)
	case !(*drift > 0 && *drift < 1):
		return fmt.Errorf("models: drift delta %v outside (0, 1)", *drift)
	}
	return nil
}

// subspaceSize is River's _set_max_features for a rule and n attributes.
func subspaceSize(rule string, n int) (int, error) {
	var m int
	switch rule {
	case "sqrt":
		m = int(math.RoundToEven(math.Sqrt(float64(n))))
	case "log2":
		if n > 0 {
			m = int(math.RoundToEven(math.Log2(float64(n))))
		}
	case "all":
		m = n
	default:
		if v, err := strconv.Atoi(rule); err == nil {
			m = v
		} else if f, err := strconv.ParseFloat(rule, 64); err == nil && f > 0 && f <= 1 {
			m = int(f * float64(n))
		} else {
			return 0, fmt.Errorf("models: max features %q is not sqrt, log2, all, a count or a share in (0, 1]", rule)
		}
	}
	if m < 0 {
		m += n
	}
	if m <= 0 {
		m = 1
	}
	return min(m, max(n, 0)), nil
}
