package evaluate

import (
	"fmt"
	"path/filepath"
	"strings"
)

// ReadOptions configure ReadFile.
type ReadOptions struct {
	// Label names the label column (required).
	Label string
	// HashBits sets the buckets text columns hash into, [1, 28]. Default 18.
	HashBits int
}

// ReadFile reads a CSV (.csv), JSON Lines (.jsonl, .ndjson) or Parquet
// (.parquet) file into memory. Without a schema, every column but the
// label is a feature: a column whose values are all numbers (or empty) is
// a dense value, with empty cells, nulls and non-finite numbers missing;
// booleans are 0 and 1; any other column is a categorical, its values
// hashed (FNV-1a of the column's position and the value) into 2^HashBits
// buckets, empty cells and nulls absent.
func ReadFile(path string, opts ReadOptions) (*Dataset, error) {
	if opts.Label == "" {
		return nil, fmt.Errorf("read %s: no label column given", path)
	}
	if opts.HashBits == 0 {
		opts.HashBits = 18
	}
	if opts.HashBits < 1 || opts.HashBits > 28 {
		return nil, fmt.Errorf("read %s: hash bits %d outside [1, 28]", path, opts.HashBits)
	}
	var (
		d   *Dataset
		err error
	)
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".csv":
		d, err = readCSV(path, opts)
	case ".jsonl", ".ndjson":
		d, err = readJSONL(path, opts)
	case ".parquet":
		d, err = readParquet(path, opts)
	default:
		return nil, fmt.Errorf("read %s: unknown format %q (want .csv, .jsonl, .ndjson or .parquet)", path, ext)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if d.Rows.N == 0 {
		return nil, fmt.Errorf("read %s: no rows", path)
	}
	return d, nil
}
