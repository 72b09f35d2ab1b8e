package pipeline

import "time"

// LakeSpec turns on the live lake: `driftline run` writes every event it
// scores (its columns after anonymize, with the champion's score and model
// version and its source offset) and every label the label plane joins
// into a Parquet lake (connectors/lake) under Dir:
//
//	lake:
//	  dir: /var/lib/driftline/lake   # required
//	  compression: snappy            # snappy (default), zstd, gzip, lz4
//	  roll:
//	    max_bytes: 134217728         # roll a file at this compressed size (default 128 MiB)
//	    max_age: 1m                  # ... or this long after it opened (default 1m)
//	  retention:
//	    max_age: 168h                # delete hour partitions older than this (0: keep)
//	    max_bytes: 0                 # delete the oldest files past this total (0: no bound)
//
// Writes are off the partition loop's critical path; a batch's input
// offsets are committed only once the lake file holding its rows is
// committed, so offset commits lag by up to roll.max_age; the same holds
// for the labels topic's offsets and the labels joined. It cannot be
// combined with kafka.exactly_once or topics.model_state.
type LakeSpec struct {
	// Dir is the lake's root directory; created when missing. Required.
	Dir string `yaml:"dir"`
	// Compression is the Parquet codec (default DefaultLakeCompression).
	Compression string       `yaml:"compression"`
	Roll        LakeRollSpec `yaml:"roll"`
	// Retention bounds the lake; absent, it grows without bound.
	Retention LakeRetentionSpec `yaml:"retention"`
}

// LakeRollSpec says when a lake file is committed.
type LakeRollSpec struct {
	// MaxBytes rolls a file at this compressed size (default
	// DefaultLakeRollBytes, at least 1 MiB).
	MaxBytes int64 `yaml:"max_bytes"`
	// MaxAge rolls a file this long after it opened (default
	// DefaultLakeRollAge, between 100ms and 1h). It bounds how far the
	// committed input offsets lag behind the processed ones.
	MaxAge Duration `yaml:"max_age"`
}

// LakeRetentionSpec bounds the lake by age and size; 0 is no bound.
type LakeRetentionSpec struct {
	// MaxAge deletes the files whose newest event is older than this
	// (at least 1h when set).
	MaxAge Duration `yaml:"max_age"`
	// MaxBytes deletes the oldest committed files while the lake's files
	// hold more than this many bytes (at least 1 MiB when set).
	MaxBytes int64 `yaml:"max_bytes"`
}

// Defaults of the lake block.
const (
	DefaultLakeCompression = "snappy"
	DefaultLakeRollBytes   = 128 << 20
	DefaultLakeRollAge     = time.Minute
)

// LakeCompressions are lake.compression's values.
var LakeCompressions = []string{"snappy", "zstd", "gzip", "lz4"}

func (l *LakeSpec) applyDefaults() {
	if l.Compression == "" {
		l.Compression = DefaultLakeCompression
	}
	if l.Roll.MaxBytes == 0 {
		l.Roll.MaxBytes = DefaultLakeRollBytes
	}
	if l.Roll.MaxAge == 0 {
		l.Roll.MaxAge = Duration(DefaultLakeRollAge)
	}
}

// validateLake checks the lake block, with defaults applied.
func (s *Spec) validateLake(add func(path, format string, args ...any)) {
	l := s.Lake
	if l == nil {
		return
	}
	if l.Dir == "" {
		add("lake.dir", "is required")
	}
	known := false
	for _, c := range LakeCompressions {
		known = known || c == l.Compression
	}
	if !known {
		add("lake.compression", "must be one of %v, got %q", LakeCompressions, l.Compression)
	}
	if l.Roll.MaxBytes < 1<<20 {
		add("lake.roll.max_bytes", "must be at least 1 MiB (1048576), got %d", l.Roll.MaxBytes)
	}
	if d := l.Roll.MaxAge.D(); d < 100*time.Millisecond || d > time.Hour {
		add("lake.roll.max_age", "must be between 100ms and 1h, got %s", d)
	}
	if d := l.Retention.MaxAge.D(); d != 0 && d < time.Hour {
		add("lake.retention.max_age", "must be at least 1h (or 0: keep), got %s", d)
	}
	if b := l.Retention.MaxBytes; b != 0 && b < 1<<20 {
		add("lake.retention.max_bytes", "must be at least 1 MiB (1048576) (or 0: no bound), got %d", b)
	}
	if s.Kafka.ExactlyOnce {
		add("lake", "cannot be combined with kafka.exactly_once yet: the lake commits its files outside the Kafka transaction")
	}
	if s.Topics.ModelState != "" {
		// The learner-state writer's label feed commits the label offsets
		// with each published state, not through the lake's commit gate,
		// and its early labels have no source offset that the labels table
		// could recognize after a restore.
		add("lake", "cannot be combined with topics.model_state yet: the labels table is gated on the label plane's offset commits, which the learner-state writer's label feed replaces")
	}
}
