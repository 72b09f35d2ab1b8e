package pipeline

import (
	"errors"
	"fmt"
	"reflect"

	"go.yaml.in/yaml/v4"
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
// wrong type, is an error that names its file, line and field path, from
// the block's YAML nodes.
func (s *Spec) DecodeBlock(path string, b Block, out any) error {
	if b.node == nil {
		return nil
	}
	n := b.node
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return s.errAtLine(path, n.Line, "must be a mapping of fields")
	}
	v := reflect.New(reflect.TypeOf(out).Elem())
	var d nodeDecoder
	d.decode(n, v.Elem(), path)
	if len(d.errs) > 0 {
		errs := make([]error, len(d.errs))
		for i, e := range d.errs {
			errs[i] = s.errAtLine(e.path, e.line, "%s", e.msg)
		}
		return errors.Join(errs...)
	}
	reflect.ValueOf(out).Elem().Set(v.Elem())
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
