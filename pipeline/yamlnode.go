package pipeline

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v4"
)

// nodeDecoder decodes a YAML node tree into a Go value strictly, and keeps
// going after a problem: every unknown or repeated key and every value of
// the wrong shape or type is one nodeError, positioned by the node it is
// about (its line) and named by its field path ("schema.fields[2].type").
// Positions come from the nodes, never from the YAML library's messages.
// Struct fields are matched by their yaml tag (the lowercased field name
// without one; "-" skips a field); a type that implements yaml.Unmarshaler
// (Duration, Block) decodes its own node, and its error is positioned at
// that node.
type nodeDecoder struct {
	errs []nodeError
}

type nodeError struct {
	path string
	line int
	msg  string
}

func (d *nodeDecoder) fail(path string, n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, nodeError{path: path, line: n.Line, msg: fmt.Sprintf(format, args...)})
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// decode decodes n into v, which must be settable.
func (d *nodeDecoder) decode(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		v.SetZero() // an absent value
		return
	}
	if v.Kind() != reflect.Pointer && v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			d.fail(path, n, "%s", describeErr(err))
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		d.decode(n, p.Elem(), path)
		v.Set(p)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(path, n, "want a list, got %s", describeNode(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), path+"["+strconv.Itoa(i)+"]")
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.fail(path, n, "want a mapping, got %s", describeNode(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		d.eachKey(n, path, func(key string, k, val *yaml.Node) {
			kv := reflect.New(v.Type().Key()).Elem()
			d.decodeScalar(k, kv, path+"."+key)
			ev := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, ev, path+"."+key)
			m.SetMapIndex(kv, ev)
		})
		v.Set(m)
	case reflect.Interface:
		var x any
		if err := n.Decode(&x); err != nil {
			d.fail(path, n, "%s", describeErr(err))
			return
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
	default:
		d.decodeScalar(n, v, path)
	}
}

// decodeStruct decodes a mapping into the fields of struct v.
func (d *nodeDecoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, n, "want a mapping of fields, got %s", describeNode(n))
		return
	}
	fields := yamlFieldIndex(v.Type())
	d.eachKey(n, path, func(key string, k, val *yaml.Node) {
		p := key
		if path != "" {
			p = path + "." + key
		}
		i, ok := fields[key]
		if !ok {
			d.fail(p, k, "unknown key %q (known: %s)", key, strings.Join(slices.Sorted(mapKeys(fields)), ", "))
			return
		}
		d.decode(val, v.Field(i), p)
	})
}

// eachKey calls f for each key of mapping n, reporting keys that are not
// scalars and keys that appear twice.
func (d *nodeDecoder) eachKey(n *yaml.Node, path string, f func(key string, k, v *yaml.Node)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.fail(path, k, "a key must be a single value, not %s", describeNode(k))
			continue
		}
		if line, dup := seen[k.Value]; dup {
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			d.fail(p, k, "key %q appears twice (first on line %d)", k.Value, line)
			continue
		}
		seen[k.Value] = k.Line
		f(k.Value, k, v)
	}
}

// decodeScalar decodes a scalar node into a string, bool or number.
func (d *nodeDecoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.fail(path, n, "want a single value, got %s", describeNode(n))
		return
	}
	if err := n.Decode(v.Addr().Interface()); err != nil {
		d.fail(path, n, "%q is not %s", n.Value, describeKind(v.Type()))
	}
}

// yamlFieldIndex maps the yaml keys of struct type t to field indexes.
func yamlFieldIndex(t reflect.Type) map[string]int {
	out := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = i
	}
	return out
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// describeNode names what a node holds, for messages.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "nothing usable"
}

// describeKind names a Go type as a spec's reader knows it.
func describeKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer ≥ 0"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	}
	return "a " + t.String()
}

// describeErr is a decoding error's message for a field whose node
// positions it: a *yaml.LoadError's message without its position.
func describeErr(err error) string {
	var le *yaml.LoadError
	if errors.As(err, &le) {
		return le.Message
	}
	return err.Error()
}
