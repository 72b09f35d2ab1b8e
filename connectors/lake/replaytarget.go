package lake

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ReplayMarkerName is the file a lake written by a completed replay run
// holds, naming the run (a ReplayMarker, as JSON).
const ReplayMarkerName = "_replay.json"

// ReplayMarker is ReplayMarkerName's content.
type ReplayMarker struct {
	Run      string `json:"run"`
	Model    string `json:"model"`
	Version  string `json:"version"`
	Inputs   int64  `json:"inputs"`
	Rows     int64  `json:"rows"`
	Finished string `json:"finished"`
}

// ErrReplayDone says that a replay target's directory already holds the
// output of the same run.
var ErrReplayDone = errors.New("already complete")

// ReplayTarget is a new lake that a replay run writes: into DIR.partial,
// published as DIR with a ReplayMarker once complete, so that DIR is
// either absent (or empty) or holds a whole run. A killed run leaves
// DIR.partial, which the next run of any id discards. It is a Writer (one
// goroutine writes); Close after Publish does nothing.
type ReplayTarget struct {
	*Writer
	dir, partial string
}

// OpenReplayTarget checks dir and opens a Writer on dir.partial, with
// event times in timeColumn (see Config.TimeColumn). When dir holds the
// output of runID it returns ErrReplayDone; when it holds anything else,
// an error.
func OpenReplayTarget(dir, runID, timeColumn string) (*ReplayTarget, error) {
	if data, err := os.ReadFile(filepath.Join(dir, ReplayMarkerName)); err == nil {
		var m ReplayMarker
		if json.Unmarshal(data, &m) == nil && m.Run == runID {
			return nil, ErrReplayDone
		}
		return nil, fmt.Errorf("%s holds the output of another run (%s); choose a new directory", dir, m.Run)
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("%s exists and is not empty; choose a new directory", dir)
	}
	partial := filepath.Clean(dir) + ".partial"
	if err := os.RemoveAll(partial); err != nil {
		return nil, fmt.Errorf("discard %s: %w", partial, err)
	}
	w, err := New(Config{Root: partial, TimeColumn: timeColumn, MaxAge: 1 << 62})
	if err != nil {
		return nil, err
	}
	return &ReplayTarget{Writer: w, dir: dir, partial: partial}, nil
}

// Publish closes the Writer, writes m as the marker and renames the
// partial directory to the target's.
func (t *ReplayTarget) Publish(m ReplayMarker) error {
	if err := t.Close(); err != nil {
		return err
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(t.partial, ReplayMarkerName), append(data, '\n'), 0o644); err != nil {
		return err
	}
	_ = os.Remove(t.dir) // an empty directory may be there
	return os.Rename(t.partial, t.dir)
}
