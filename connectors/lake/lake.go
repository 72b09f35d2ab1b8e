// Package lake is driftline's Parquet data lake: a sink that writes
// validated, anonymized events with their prediction, model version, label
// and source offsets, and a reader that replays them.
//
// Layout under Config.Root:
//
//	date=YYYY-MM-DD/hour=HH/part-<seq>-<uuid>.parquet   (event time, UTC)
//	_manifest.jsonl                                     (one ManifestEntry per committed file)
//
// A file is written as part-….parquet.tmp in its final directory, closed,
// fsynced, renamed, and the directory fsynced; only then is its manifest
// line appended (and fsynced). The manifest is the commit log: readers of
// this package see only files it lists, in the order they were committed.
//
// Every file holds the event columns of the records written, followed by the
// columns named by the Col* constants. The schema of the first record
// written fixes the schema of every later one for the life of a Writer.
//
// Live is the lake `driftline run` writes with a spec's lake block: the
// events table at the root, and a labels table (ColEventID, ColLabel, the
// prediction's score and version, the join time as ColEventTime) under
// LabelsDir, written off the partition loops' critical path, with the
// input and labels topics' offset commits gated on the lake's (see Live
// for the contract).
// Writer.Expire applies retention.
package lake

import (
	"errors"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/parquet/compress"
)

// Columns the Writer appends to every event row. Event schemas may not use
// these names.
const (
	// ColScore is the champion's prediction (float32, not null).
	ColScore = "driftline_score"
	// ColModelVersion is the version of the model that scored the row (string, not null).
	ColModelVersion = "driftline_model_version"
	// ColLabel is the joined label (float32, null while unknown).
	ColLabel = "driftline_label"
	// ColSourceTopic is the input topic the row came from (string, not null).
	ColSourceTopic = "driftline_source_topic"
	// ColSourcePartition is the input partition (int32, not null).
	ColSourcePartition = "driftline_source_partition"
	// ColSourceOffset is the input offset (int64, not null).
	ColSourceOffset = "driftline_source_offset"
	// ColEventTime is the event time the row was partitioned by: the
	// Config.TimeColumn value, or the record time when that is null or unset
	// (timestamp[us, UTC], not null).
	ColEventTime = "driftline_event_time"
)

// ManifestName is the manifest's file name under Config.Root.
const ManifestName = "_manifest.jsonl"

const tmpSuffix = ".tmp"

// Errors a Writer returns; test them with errors.Is.
var (
	// ErrForbiddenColumn: a record holds a column listed in Config.ForbiddenColumns.
	ErrForbiddenColumn = errors.New("lake: forbidden column")
	// ErrSchema: a record's schema differs from the first one written, or
	// uses a reserved (Col*) name, or lacks a usable time column.
	ErrSchema = errors.New("lake: schema mismatch")
	// ErrNoEventTime: a row has neither an event time nor a record time.
	ErrNoEventTime = errors.New("lake: row without event time")
	// ErrClosed: the Writer was closed.
	ErrClosed = errors.New("lake: writer closed")
)

// Config configures a Writer. The zero value of every field but Root takes
// the default its doc states.
type Config struct {
	// Root is the lake's directory; it is created if missing. Required.
	// At most one Writer may use a Root at a time.
	Root string
	// TimeColumn names the timestamp column that holds the event time.
	// Rows where it is null, and every row when it is "", take the record
	// time instead (Extras.RecordTimes, or Message.Timestamp in WriteBatch).
	TimeColumn string
	// ForbiddenColumns are column names (plaintext PII) that must never
	// reach the lake: a record that holds one is refused whole with
	// ErrForbiddenColumn, before anything is written.
	ForbiddenColumns []string
	// MaxRows rolls a file once it holds this many rows; files never hold
	// more. Default 1,000,000.
	MaxRows int64
	// MaxBytes rolls a file once its compressed size reaches it, checked
	// each time one of its row groups fills and closes; the row group
	// being filled is held in memory and not counted, so a file can exceed
	// MaxBytes by up to about two row groups (see RowGroupRows).
	// Default 128 MiB.
	MaxBytes int64
	// MaxAge rolls a file this long after it was opened: on the next write
	// to its partition, or from Run. Default 5 minutes.
	MaxAge time.Duration
	// MaxOpenFiles bounds the partitions (date, hour) with an open file;
	// opening one more commits the least recently written. Default 8.
	MaxOpenFiles int
	// RowGroupRows is the most rows per Parquet row group; a row group is
	// buffered in memory until full. Default 65,536.
	RowGroupRows int64
	// Compression is the Parquet codec. Default compress.Codecs.Snappy
	// (the zero value, Uncompressed, is replaced by the default).
	Compression compress.Compression
	// Now reads the clock that file ages are measured on. Default time.Now.
	Now func() time.Time
	// CommitTogether makes every commit a cut: when one file rolls (any
	// reason) every open file is committed with it, as one manifest group
	// (ManifestEntry.Group), written with one append. Then every row
	// written before a commit is durable once it returns, which lets a
	// caller gate input-offset commits on it (see Live); and New drops a
	// group whose lines a crash tore apart, with its files.
	CommitTogether bool
}

func (c Config) withDefaults() Config {
	if c.MaxRows == 0 {
		c.MaxRows = 1_000_000
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 128 << 20
	}
	if c.MaxAge == 0 {
		c.MaxAge = 5 * time.Minute
	}
	if c.MaxOpenFiles == 0 {
		c.MaxOpenFiles = 8
	}
	if c.RowGroupRows == 0 {
		c.RowGroupRows = 65536
	}
	if c.Compression == compress.Codecs.Uncompressed {
		c.Compression = compress.Codecs.Snappy
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports whether c, with its defaults applied, is usable.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Root == "":
		return errors.New("lake: root is required")
	case c.MaxRows < 1:
		return errors.New("lake: max rows must be at least 1")
	case c.MaxBytes < 1:
		return errors.New("lake: max bytes must be at least 1")
	case c.MaxAge < 0:
		return errors.New("lake: max age must be positive")
	case c.MaxOpenFiles < 1:
		return errors.New("lake: max open files must be at least 1")
	case c.RowGroupRows < 1:
		return errors.New("lake: row group rows must be at least 1")
	}
	for _, name := range c.ForbiddenColumns {
		if name == c.TimeColumn && name != "" {
			return fmt.Errorf("lake: time column %q is forbidden", name)
		}
	}
	return nil
}
