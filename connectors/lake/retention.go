package lake

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Expire deletes the oldest committed files past retention: first every
// file whose newest event (MaxEventTime) is older than maxAge before now,
// then, oldest committed first, files while the lake's files hold more than
// maxBytes. 0 turns a bound off. The newest commit (its whole group, under
// Config.CommitTogether) is never deleted: it carries the offsets LastOffset
// resumes from.
//
// The manifest is rewritten without them atomically (a temporary file,
// fsync, rename, directory fsync) before the files are removed, so a
// reader that reads the manifest afterwards never meets them. A reader
// that read the manifest before and opens a removed file afterwards gets an
// error wrapping fs.ErrNotExist (ReadFiles yields it, naming the file): it
// should read the manifest again. Files already open keep their data until
// closed. Empty partition directories are removed. It returns the entries
// removed.
func (w *Writer) Expire(maxAge time.Duration, maxBytes int64) ([]ManifestEntry, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return nil, err
	}
	entries, err := ReadManifest(w.cfg.Root)
	if err != nil {
		return nil, err
	}
	protect := len(entries) - 1 // first entry of the newest commit
	if protect < 0 {
		return nil, nil
	}
	if g := entries[protect].Group; g != 0 {
		for protect > 0 && entries[protect-1].Group == g {
			protect--
		}
	}
	drop := make([]bool, len(entries))
	var total int64
	for _, e := range entries {
		total += e.Bytes
	}
	if maxAge > 0 {
		cut := w.cfg.Now().Add(-maxAge)
		for i, e := range entries[:protect] {
			if e.MaxEventTime.Before(cut) {
				drop[i] = true
				total -= e.Bytes
			}
		}
	}
	if maxBytes > 0 {
		for i := 0; i < protect && total > maxBytes; i++ {
			if !drop[i] {
				drop[i] = true
				total -= entries[i].Bytes
			}
		}
	}
	var kept, removed []ManifestEntry
	for i, e := range entries {
		if drop[i] {
			removed = append(removed, e)
		} else {
			kept = append(kept, e)
		}
	}
	if len(removed) == 0 {
		return nil, nil
	}
	if err := w.rewriteManifestLocked(kept); err != nil {
		return nil, w.fail(err)
	}
	for _, e := range removed {
		path := filepath.Join(w.cfg.Root, filepath.FromSlash(e.Path))
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("lake: expire %s: %w", e.Path, err)
		}
		// The hour's and the date's directories, when now empty.
		hourDir := filepath.Dir(path)
		if os.Remove(hourDir) == nil {
			_ = os.Remove(filepath.Dir(hourDir))
		}
	}
	return removed, nil
}

// rewriteManifestLocked replaces the manifest by entries, atomically, and
// reopens the append handle on the new file.
func (w *Writer) rewriteManifestLocked(entries []ManifestEntry) error {
	path := filepath.Join(w.cfg.Root, ManifestName)
	tmp := path + tmpSuffix
	var buf []byte
	for _, e := range entries {
		line, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("lake: encode manifest entry: %w", err)
		}
		buf = append(append(buf, line...), '\n')
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("lake: rewrite manifest: %w", err)
	}
	_, err = f.Write(buf)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(w.cfg.Root)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("lake: rewrite manifest: %w", err)
	}
	mf, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("lake: reopen manifest: %w", err)
	}
	w.manifest.Close()
	w.manifest = mf
	return nil
}
