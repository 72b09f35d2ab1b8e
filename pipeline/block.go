package pipeline

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Block is a block of the spec whose fields another package owns, such as
// rollout.gate (models/rollout.GateSpec): the spec keeps its YAML, and the
// composition root decodes it into that package's type with
// Spec.DecodeBlock, which reports unknown keys and type errors with the
// file, line and field path like every other spec error. The zero Block is
// an absent block.
type Block struct {
	node *yaml.Node
}

// IsSet reports whether the spec has the block.
func (b Block) IsSet() bool { return b.node != nil }

// UnmarshalYAML keeps the block's YAML.
func (b *Block) UnmarshalYAML(n *yaml.Node) error {
	c := *n
	b.node = &c
	return nil
}

// MarshalYAML writes the block as it was read.
func (b Block) MarshalYAML() (any, error) {
	if b.node == nil {
		return nil, nil
	}
	return b.node, nil
}

// DecodeBlock decodes block b, found at path (e.g. "rollout.gate"), into
// out, a pointer to a struct with yaml tags. An absent block leaves out
// unchanged. Every key that out has no field for, and every value of the
// wrong type, is an error that names its file, line and field path.
func (s *Spec) DecodeBlock(path string, b Block, out any) error {
	if b.node == nil {
		return nil
	}
	n := b.node
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return s.errAtLine(path, n.Line, "must be a mapping of fields")
	}
	known := yamlFields(reflect.TypeOf(out).Elem())
	var errs []error
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !known[k.Value] {
			names := make([]string, 0, len(known))
			for f := range known {
				names = append(names, f)
			}
			errs = append(errs, s.errAtLine(path+"."+k.Value, k.Line, "unknown field (known: %s)", strings.Join(slices.Sorted(slices.Values(names)), ", ")))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := n.Decode(out); err != nil {
		// Decode each field alone to name the ones at fault.
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			one := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{k, v}}
			if ferr := one.Decode(reflect.New(reflect.TypeOf(out).Elem()).Interface()); ferr != nil {
				errs = append(errs, s.errAtLine(path+"."+k.Value, v.Line, "%s", cleanYAMLError(ferr)))
			}
		}
		if len(errs) == 0 {
			errs = append(errs, s.errAtLine(path, n.Line, "%s", cleanYAMLError(err)))
		}
		return errors.Join(errs...)
	}
	return nil
}

// ErrAt is a SpecError for the field at path ("rollout.gate.metric"), on
// the line where the spec sets it (or its nearest parent).
func (s *Spec) ErrAt(path, format string, args ...any) error { return s.errAt(path, format, args...) }

func (s *Spec) errAtLine(path string, line int, format string, args ...any) error {
	e := &SpecError{Field: path, Msg: fmt.Sprintf(format, args...), Line: line}
	if s.source != nil {
		e.File = s.source.file
	}
	return e
}

// yamlFields is the set of yaml keys of struct type t.
func yamlFields(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = true
	}
	return out
}

// cleanYAMLError is err's message without yaml's "yaml: " and "line N: "
// prefixes (the SpecError carries the line).
func cleanYAMLError(err error) string {
	msgs := []string{err.Error()}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for i, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		if strings.HasPrefix(m, "line ") {
			if _, rest, ok := strings.Cut(m, ": "); ok {
				m = rest
			}
		}
		msgs[i] = m
	}
	return strings.Join(msgs, "; ")
}
