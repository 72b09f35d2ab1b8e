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
	// Group and GroupFiles are set by a Writer with
	// Config.CommitTogether: the files committed together share Group
	// (increasing from 1 over the lake's life), and each records how many
	// the group has.
	Group      int64 `json:"group,omitempty"`
	GroupFiles int   `json:"group_files,omitempty"`
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

// appendManifest writes es as one line each, in one write, and fsyncs them.
func appendManifest(f *os.File, es ...ManifestEntry) error {
	var buf []byte
	for _, e := range es {
		line, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("lake: encode manifest entry: %w", err)
		}
		buf = append(append(buf, line...), '\n')
	}
	if _, err := f.Write(buf); err != nil {
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

// repairManifest cuts a torn last line off root's manifest, and the lines
// of a last group that lacks some of its files (a crash between them; see
// Config.CommitTogether), deleting that group's files. It returns the
// entries kept.
func repairManifest(root string) ([]ManifestEntry, error) {
	path := filepath.Join(root, ManifestName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lake: read manifest: %w", err)
	}
	keep := bytes.LastIndexByte(data, '\n') + 1
	entries, err := ReadManifest(root)
	if err != nil {
		return nil, err
	}
	if n := len(entries); n > 0 && entries[n-1].GroupFiles > 0 {
		g := entries[n-1].Group
		first := n
		for first > 0 && entries[first-1].Group == g {
			first--
		}
		if n-first < entries[n-1].GroupFiles {
			for _, e := range entries[first:] {
				if err := os.Remove(filepath.Join(root, filepath.FromSlash(e.Path))); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return nil, fmt.Errorf("lake: drop torn group: %w", err)
				}
			}
			keep = 0
			for range first {
				keep += bytes.IndexByte(data[keep:], '\n') + 1
			}
			entries = entries[:first]
		}
	}
	if keep < len(data) {
		if err := os.Truncate(path, int64(keep)); err != nil {
			return nil, fmt.Errorf("lake: repair manifest: %w", err)
		}
	}
	return entries, nil
}

// LastOffsets is, per input partition, the greatest source offset of the
// files entries list. Under Config.CommitTogether every committed group is
// a cut of what was written, so a writer fed each partition in offset
// order holds every row up to it.
func LastOffsets(entries []ManifestEntry) map[SourceKey]int64 {
	out := map[SourceKey]int64{}
	for _, e := range entries {
		for _, s := range e.Sources {
			k := SourceKey{s.Topic, s.Partition}
			if o, ok := out[k]; !ok || s.LastOffset > o {
				out[k] = s.LastOffset
			}
		}
	}
	return out
}

// SourceKey names an input partition.
type SourceKey struct {
	Topic     string
	Partition int32
}

// newestGroup is the greatest Group of entries (0: none).
func newestGroup(entries []ManifestEntry) int64 {
	var g int64
	for _, e := range entries {
		g = max(g, e.Group)
	}
	return g
}
