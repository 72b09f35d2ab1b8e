package evaluate

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// readCSV reads a CSV file with a header row, in two passes: the first
// finds the numeric columns, the second builds the rows.
func readCSV(path string, opts ReadOptions) (*Dataset, error) {
	var names []string
	var numeric []bool
	err := scanCSV(path, func(header []string) error {
		names = header
		numeric = make([]bool, len(header))
		for i := range numeric {
			numeric[i] = true
		}
		return nil
	}, func(line int, rec []string) error {
		for i, v := range rec {
			if numeric[i] && strings.TrimSpace(v) != "" {
				if _, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err != nil {
					numeric[i] = false
				}
			}
		}
		return nil
	})
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
	err = scanCSV(path, func([]string) error { return nil }, func(line int, rec []string) error {
		for i, v := range rec {
			v = strings.TrimSpace(v)
			c := cell{text: v, empty: v == ""}
			if numeric[i] && !c.empty {
				c.num, _ = strconv.ParseFloat(v, 64)
				c.isNum = true
			}
			cells[i] = c
		}
		b.addRow(d, cells, labelText, &labelNames)
		return nil
	})
	if err != nil {
		return nil, err
	}
	finishLabels(d, labelNames)
	return d, nil
}

// scanCSV calls header with the first record and row with every other.
func scanCSV(path string, header func([]string) error, row func(line int, rec []string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.ReuseRecord = true
	head, err := r.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty file: no header row")
		}
		return err
	}
	if err := header(append([]string(nil), head...)); err != nil {
		return err
	}
	for line := 2; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		if err := row(line, rec); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
	}
}
