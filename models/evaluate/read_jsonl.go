package evaluate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
)

// readJSONL reads one JSON object per line, in two passes: the first
// collects the keys (in the order they first appear) and finds the numeric
// ones, the second builds the rows. A key missing from a line is a missing
// value there.
func readJSONL(path string, opts ReadOptions) (*Dataset, error) {
	var names []string
	index := map[string]int{}
	var numeric []bool
	err := scanJSONL(path, func(line int, key string, v json.RawMessage) error {
		i, ok := index[key]
		if !ok {
			i = len(names)
			index[key] = i
			names = append(names, key)
			numeric = append(numeric, true)
		}
		c, err := jsonCell(v)
		if err != nil {
			return fmt.Errorf("key %q: %w", key, err)
		}
		if !c.empty && !c.isNum {
			numeric[i] = false
		}
		return nil
	}, nil)
	if err != nil {
		return nil, err
	}
	b, d, err := newTableBuilder(names, numeric, opts.Label, opts.HashBits)
	if err != nil {
		return nil, err
	}
	var labelText map[string]int
	var labelNames []string
	if !numeric[b.label] {
		labelText = map[string]int{}
	}
	cells := make([]cell, len(names))
	reset := func() {
		for i := range cells {
			cells[i] = cell{empty: true}
		}
	}
	reset()
	err = scanJSONL(path, func(line int, key string, v json.RawMessage) error {
		c, _ := jsonCell(v)
		cells[index[key]] = c
		return nil
	}, func() {
		b.addRow(d, cells, labelText, &labelNames)
		reset()
	})
	if err != nil {
		return nil, err
	}
	finishLabels(d, labelNames)
	return d, nil
}

// jsonCell converts a JSON value: a number, a boolean (0 or 1), a string,
// or null (empty). Objects and arrays are rejected.
func jsonCell(v json.RawMessage) (cell, error) {
	v = bytes.TrimSpace(v)
	switch {
	case len(v) == 0 || string(v) == "null":
		return cell{empty: true}, nil
	case string(v) == "true":
		return cell{num: 1, isNum: true}, nil
	case string(v) == "false":
		return cell{num: 0, isNum: true}, nil
	case v[0] == '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return cell{}, err
		}
		return cell{text: s, empty: s == ""}, nil
	case v[0] == '{' || v[0] == '[':
		return cell{}, errors.New("nested objects and arrays are not features")
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil {
		return cell{}, fmt.Errorf("bad number %s", v)
	}
	return cell{num: f, isNum: true}, nil
}

// scanJSONL calls field for every key and value of every object, in order,
// and end (when not nil) after each object. Blank lines are skipped.
func scanJSONL(path string, field func(line int, key string, v json.RawMessage) error, end func()) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for line := 1; sc.Scan(); line++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		if err := scanObject(text, func(key string, v json.RawMessage) error { return field(line, key, v) }); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		if end != nil {
			end()
		}
	}
	return sc.Err()
}

// scanObject walks one JSON object's keys and raw values in order.
func scanObject(text []byte, field func(key string, v json.RawMessage) error) error {
	dec := json.NewDecoder(bytes.NewReader(text))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return errors.New("not a JSON object")
	}
	var seen []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		if slices.Contains(seen, key) {
			return fmt.Errorf("key %q twice", key)
		}
		seen = append(seen, key)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("key %q: %w", key, err)
		}
		if err := field(key, v); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the object")
	}
	return nil
}
