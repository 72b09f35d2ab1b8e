package lake

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// hourlyLake writes 6 hours of 100 events each (one file per hour) and
// returns the writer, with its clock 30 minutes after the last hour.
func hourlyLake(t *testing.T, root string) (*Writer, *fakeClock) {
	t.Helper()
	clock := &fakeClock{now: at(6 * time.Hour)}
	w := newWriter(t, Config{Root: root, TimeColumn: "ts", Now: clock.Now})
	for h := range 6 {
		evs := run(int64(h*100), 100, at(time.Duration(h)*time.Hour))
		write(t, w, 0, evs)
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(30 * time.Minute)
	return w, clock
}

func TestExpireByAge(t *testing.T) {
	root := t.TempDir()
	w, _ := hourlyLake(t, root)
	before := mustManifest(t, root)
	removed, err := w.Expire(3*time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Now is 6h30 after t0: hours 0-3 (newest event at most 3h01m39s) go.
	if len(removed) != 4 {
		t.Fatalf("removed %d files, want the 4 hours whose newest event is older than 3h", len(removed))
	}
	after := mustManifest(t, root)
	if len(after) != 2 || after[0].Path != before[4].Path {
		t.Fatalf("manifest after expiry %+v, want the newest 2 files", after)
	}
	for _, e := range removed {
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(e.Path))); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("expired file %s still exists (%v)", e.Path, err)
		}
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(filepath.Dir(e.Path)))); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("expired file %s's empty hour directory still exists", e.Path)
		}
	}
	if ids := readIDs(t, root, time.Time{}, time.Time{}); len(ids) != 200 {
		t.Errorf("readers see %d rows, want 200", len(ids))
	}
	// The writer goes on appending to the rewritten manifest.
	write(t, w, 0, run(600, 10, at(6*time.Hour)))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if es := mustManifest(t, root); len(es) != 3 {
		t.Errorf("manifest has %d entries after one more commit, want 3", len(es))
	}
}

func TestExpireBySize(t *testing.T) {
	root := t.TempDir()
	w, _ := hourlyLake(t, root)
	es := mustManifest(t, root)
	var total int64
	for _, e := range es {
		total += e.Bytes
	}
	// Room for a bit more than 2 files: the 4 oldest go.
	limit := es[4].Bytes + es[5].Bytes + es[5].Bytes/2
	removed, err := w.Expire(0, limit)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 4 || removed[0].Path != es[0].Path {
		t.Fatalf("removed %+v, want the 4 oldest of %d bytes in all", removed, total)
	}
	// The newest commit is never deleted, whatever the bound.
	if removed, err = w.Expire(time.Nanosecond, 1); err != nil || len(removed) != 1 {
		t.Fatalf("second expiry removed %d files (err %v), want 1: all but the newest", len(removed), err)
	}
	if left := mustManifest(t, root); len(left) != 1 || left[0].Path != es[5].Path {
		t.Errorf("left %+v, want the newest file", left)
	}
}

// A reader that read the manifest before an expiry gets a clear error
// naming the file, wrapping fs.ErrNotExist.
func TestReaderOfExpiredFile(t *testing.T) {
	root := t.TempDir()
	w, _ := hourlyLake(t, root)
	es := mustManifest(t, root)
	if _, err := w.Expire(time.Hour, 0); err != nil {
		t.Fatal(err)
	}
	var got error
	readFile(context.Background(), filepath.Join(root, filepath.FromSlash(es[0].Path)), 0, 1<<62, memory.DefaultAllocator, func(_ arrow.RecordBatch, err error) bool {
		got = err
		return false
	})
	if !errors.Is(got, fs.ErrNotExist) {
		t.Errorf("reading an expired file: %v, want an error wrapping fs.ErrNotExist", got)
	}
}
