package models

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// LearnerSpec names a learner family and its parameters, as a pipeline
// spec's model section or `driftline eval --model KIND --param k=v` gives
// them. It is the one way to build any of driftline's learners from text:
// NewLearnerFromSpec builds one, Validate checks one without a row shape.
// Parameter names and defaults are River's where River has the parameter.
type LearnerSpec struct {
	// Kind is one of LearnerKinds' names.
	Kind string
	// Params maps parameter names to their values as text.
	Params map[string]string
}

// Task is what a learner predicts.
type Task uint8

const (
	// TaskClassification predicts a class (P(y=1), or K probabilities).
	TaskClassification Task = iota
	// TaskRegression predicts a value.
	TaskRegression
)

// String is "classification" or "regression".
func (t Task) String() string {
	if t == TaskRegression {
		return "regression"
	}
	return "classification"
}

// KindInfo describes a learner kind for help texts.
type KindInfo struct {
	Kind   string
	Task   Task
	About  string
	Params []ParamInfo
}

// ParamInfo describes one parameter of a kind.
type ParamInfo struct {
	Name, Default, About string
}

// ErrUnknownKind reports a LearnerSpec kind that is not in LearnerKinds.
var ErrUnknownKind = errors.New("models: unknown learner kind")

// ParamError is a parameter of a LearnerSpec that is unknown to its kind,
// does not parse, or is out of range.
type ParamError struct {
	Kind, Param, Value string
	Err                error
}

func (e *ParamError) Error() string {
	if e.Value == "" { // an unknown param: Err names it
		return e.Err.Error()
	}
	return fmt.Sprintf("%s param %s=%q: %v", e.Kind, e.Param, e.Value, e.Err)
}

func (e *ParamError) Unwrap() error { return e.Err }

// param is one parameter of a kind: it parses its text into the builder's
// configuration.
type param struct {
	ParamInfo
	apply func(v string) error
}

// builder holds a kind's configuration while its parameters are applied.
type builder struct {
	params []param
	// build validates the configuration for a row shape and class count
	// and returns the learner.
	build func(sh Shape, classes int) (Learner, error)
	// check validates the configuration without a row shape.
	check func() error
	// mlp, set for the MLP kinds, gives the MLP configuration (see
	// LearnerSpec.MLPConfig).
	mlp func(sh Shape, classes int) (MLPConfig, error)
}

// kind is an entry of the learner registry.
type kind struct {
	name  string
	task  Task
	about string
	new   func() *builder
}

// kinds is the registry of learner families.
var kinds = []kind{
	{"linear", TaskRegression, "linear regression (squared loss) with an online scaler: SGD, AdaGrad or FTRL-Proximal", linearBuilder(LinkIdentity)},
	{"logistic", TaskClassification, "logistic regression (log loss; softmax for more than two classes) with an online scaler: SGD, AdaGrad or FTRL-Proximal", linearBuilder(LinkSigmoid)},
	{"softmax", TaskClassification, "multinomial logistic regression (cross-entropy, K outputs even for two classes) with an online scaler", linearBuilder(LinkSoftmax)},
	{"hoeffding_tree", TaskClassification, "Hoeffding tree (VFDT; River's HoeffdingTreeClassifier)", hoeffdingTreeBuilder},
	{"hat", TaskClassification, "Hoeffding adaptive tree: ADWIN per node, alternate subtrees (River's HoeffdingAdaptiveTreeClassifier)", hatBuilder},
	{"arf", TaskClassification, "adaptive random forest: online bagging, random subspaces, ADWIN warning and drift per tree (River's ARFClassifier)", arfBuilder},
	{"hoeffding_tree_regressor", TaskRegression, "Hoeffding tree for regression, FIMT-style (River's HoeffdingTreeRegressor)", htrBuilder},
	{"arf_regressor", TaskRegression, "adaptive random forest for regression (River's ARFRegressor)", arfRegressorBuilder},
	{"mlp", TaskClassification, "online multilayer perceptron: 1–2 hidden layers, sigmoid or softmax head, mini-batch Adam or SGD (its step also runs on ONNX Runtime)", mlpBuilder(LinkSigmoid)},
	{"mlp_regressor", TaskRegression, "online multilayer perceptron for regression (squared loss)", mlpBuilder(LinkIdentity)},
}

func findKind(name string) (kind, error) {
	for _, k := range kinds {
		if k.name == name {
			return k, nil
		}
	}
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = k.name
	}
	return kind{}, fmt.Errorf("%w %q (want one of %s)", ErrUnknownKind, name, strings.Join(names, ", "))
}

// LearnerKinds lists the learner kinds with their parameters, for help
// texts.
func LearnerKinds() []KindInfo {
	out := make([]KindInfo, len(kinds))
	for i, k := range kinds {
		info := KindInfo{Kind: k.name, Task: k.task, About: k.about}
		for _, p := range k.new().params {
			info.Params = append(info.Params, p.ParamInfo)
		}
		out[i] = info
	}
	return out
}

// Task reports what the spec's kind predicts.
func (s LearnerSpec) Task() (Task, error) {
	k, err := findKind(s.Kind)
	return k.task, err
}

// apply sets the spec's parameters on a fresh builder of its kind and
// checks them together. A parameter that is unknown or does not parse is
// reported alone; when the combination is out of range, the parameter
// without which the rest passes is named, where there is one.
func (s LearnerSpec) apply() (*builder, error) {
	k, err := findKind(s.Kind)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(s.Params))
	for n := range s.Params {
		names = append(names, n)
	}
	sort.Strings(names)
	with := func(skip string) (*builder, error) {
		b := k.new()
		for _, n := range names {
			if n == skip {
				continue
			}
			p, err := b.find(s.Kind, n)
			if err != nil {
				return nil, &ParamError{Kind: s.Kind, Param: n, Err: err}
			}
			if err := p.apply(strings.TrimSpace(s.Params[n])); err != nil {
				return nil, &ParamError{Kind: s.Kind, Param: n, Value: s.Params[n], Err: err}
			}
		}
		return b, nil
	}
	b, err := with("")
	if err != nil {
		return nil, err
	}
	cerr := b.check()
	if cerr == nil {
		return b, nil
	}
	for _, n := range names {
		if without, err := with(n); err == nil && without.check() == nil {
			return nil, &ParamError{Kind: s.Kind, Param: n, Value: s.Params[n], Err: cerr}
		}
	}
	return nil, fmt.Errorf("%s params: %w", s.Kind, cerr)
}

func (b *builder) find(kind, name string) (param, error) {
	for _, p := range b.params {
		if p.Name == name {
			return p, nil
		}
	}
	names := make([]string, len(b.params))
	for i, p := range b.params {
		names[i] = p.Name
	}
	return param{}, fmt.Errorf("%s has no param %q (its params: %s)", kind, name, strings.Join(names, ", "))
}

// Validate reports whether the spec's kind exists and every parameter is
// known, parses and is in range; an error names the parameter at fault.
func (s LearnerSpec) Validate() error {
	_, err := s.apply()
	return err
}

// NewLearnerFromSpec builds the spec's learner for rows of shape sh. For a
// classification kind, classes is the number of classes K (≥ 2); a
// "classes" parameter, where the kind has one, must agree. Regression kinds
// ignore classes.
func NewLearnerFromSpec(s LearnerSpec, sh Shape, classes int) (Learner, error) {
	b, err := s.apply()
	if err != nil {
		return nil, err
	}
	l, err := b.build(sh, classes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Kind, err)
	}
	return l, nil
}

// Parameter parsers: each returns an error that says what it wanted.

func parseInt(dst *int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errors.New("not an integer")
		}
		*dst = n
		return nil
	}
}

// parseIntSet parses an integer that must not be 0 where 0 means "the
// default" in the configuration.
func parseNonZero(dst *int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errors.New("not an integer")
		}
		if n == 0 {
			return errors.New("must not be 0")
		}
		*dst = n
		return nil
	}
}

func parseFloat(dst *float64) func(string) error {
	return func(v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return errors.New("not a number")
		}
		if f == 0 {
			return errors.New("must not be 0 (leave the parameter out for its default)")
		}
		*dst = f
		return nil
	}
}

// parseFloatZero parses a number for which 0 is the default and allowed.
func parseFloatZero(dst *float64) func(string) error {
	return func(v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return errors.New("not a number")
		}
		*dst = f
		return nil
	}
}

func parseBool(dst *bool, invert bool) func(string) error {
	return func(v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("not true or false")
		}
		*dst = b != invert
		return nil
	}
}

func parseUint64(dst *uint64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return errors.New("not a non-negative integer")
		}
		*dst = n
		return nil
	}
}

func parseEnum[T ~uint8](dst *T, names ...string) func(string) error {
	return func(v string) error {
		i := slices.Index(names, v)
		if i < 0 {
			return fmt.Errorf("not one of %s", strings.Join(names, ", "))
		}
		*dst = T(i)
		return nil
	}
}

func parseChoice(dst *string, names ...string) func(string) error {
	return func(v string) error {
		if !slices.Contains(names, v) {
			return fmt.Errorf("not one of %s", strings.Join(names, ", "))
		}
		*dst = v
		return nil
	}
}

func parseString(dst *string) func(string) error {
	return func(v string) error {
		*dst = v
		return nil
	}
}

func p(name, def, about string, apply func(string) error) param {
	return param{ParamInfo: ParamInfo{Name: name, Default: def, About: about}, apply: apply}
}
