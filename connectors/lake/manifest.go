package lake

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// ManifestEntry is one line of the manifest: a committed file and what is
// in it. Its JSON form is stable.
type ManifestEntry struct {
	// Path is the file's path relative to the root, with '/' separators.
	Path string `json:"path"`
	Rows int64  `json:"rows"`
	// Bytes is the file's size.
	Bytes int64 `json:"bytes"`
	// MinEventTime and MaxEventTime bound the file's ColEventTime values.
	MinEventTime time.Time `json:"min_event_time"`
	MaxEventTime time.Time `json:"max_event_time"`
	// Sources lists each input partition behind the file, in the order of
	// their first row in it.
	Sources     []SourceRange `json:"sources"`
	CommittedAt time.Time     `json:"committed_at"`
}

// SourceRange is the span of input offsets of one partition behind a file:
// the least and greatest offset of its rows there (inclusive). Rows the
// pipeline dropped (rejected, duplicate) leave gaps inside it.
type SourceRange struct {
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	FirstOffset int64  `json:"first_offset"`
	LastOffset  int64  `json:"last_offset"`
}

// appendManifest writes e as one line and fsyncs it.
func appendManifest(f *os.File, e ManifestEntry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("lake: encode manifest entry: %w", err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("lake: append manifest: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("lake: sync manifest: %w", err)
	}
	return nil
}

// ReadManifest returns the entries of root's manifest in commit order; a
// missing manifest has none. A last line without its newline (a crash
// mid-append) is not an entry and is ignored; any other malformed line is
// an error.
func ReadManifest(root string) ([]ManifestEntry, error) {
	data, err := os.ReadFile(filepath.Join(root, ManifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lake: read manifest: %w", err)
	}
	data = data[:bytes.LastIndexByte(data, '\n')+1]
	var out []ManifestEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, len(data)+1)
	for line := 1; sc.Scan(); line++ {
		var e ManifestEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("lake: manifest line %d: %w", line, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// repairManifest cuts a torn last line off the manifest at path and
// returns its number of entries.
func repairManifest(path string) (int, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("lake: read manifest: %w", err)
	}
	keep := bytes.LastIndexByte(data, '\n') + 1
	if keep < len(data) {
		if err := os.Truncate(path, int64(keep)); err != nil {
			return 0, fmt.Errorf("lake: repair manifest: %w", err)
		}
	}
	return bytes.Count(data[:keep], []byte{'\n'}), nil
}
