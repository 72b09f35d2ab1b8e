package pipeline_test

import (
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/pipeline"
)

func TestLakeDefaults(t *testing.T) {
	spec, err := pipeline.ParseSpec(specFile, []byte(baseSpec+"lake: {dir: /tmp/lake}\n"))
	if err != nil {
		t.Fatal(err)
	}
	l := spec.Lake
	if l == nil || l.Dir != "/tmp/lake" || l.Compression != "snappy" || l.Roll.MaxBytes != 128<<20 || l.Roll.MaxAge.D() != time.Minute ||
		l.Retention.MaxAge != 0 || l.Retention.MaxBytes != 0 {
		t.Errorf("lake %+v; want dir /tmp/lake, snappy, roll 128 MiB / 1m, no retention", l)
	}
	set := baseSpec + "lake:\n  dir: d\n  compression: zstd\n  roll: {max_bytes: 2097152, max_age: 250ms}\n  retention: {max_age: 48h, max_bytes: 1073741824}\n"
	if spec, err = pipeline.ParseSpec(specFile, []byte(set)); err != nil {
		t.Fatal(err)
	}
	if l := spec.Lake; l.Compression != "zstd" || l.Roll.MaxBytes != 2<<20 || l.Roll.MaxAge.D() != 250*time.Millisecond ||
		l.Retention.MaxAge.D() != 48*time.Hour || l.Retention.MaxBytes != 1<<30 {
		t.Errorf("lake %+v, want what the spec sets", l)
	}
	if spec, err = pipeline.ParseSpec(specFile, []byte(baseSpec)); err != nil || spec.Lake != nil {
		t.Errorf("a spec without a lake block has lake %+v (err %v), want none", spec.Lake, err)
	}
}

func TestLakeErrors(t *testing.T) {
	for _, tc := range []struct{ block, field, at, msg string }{
		{"lake:\n  compression: zstd\n", "lake.dir", "lake:", "is required"},
		{"lake:\n  dir: d\n  compression: brotli\n", "lake.compression", "  compression: brotli", `must be one of [snappy zstd gzip lz4], got "brotli"`},
		{"lake:\n  dir: d\n  roll:\n    max_bytes: 1000\n", "lake.roll.max_bytes", "    max_bytes: 1000", "must be at least 1 MiB (1048576), got 1000"},
		{"lake:\n  dir: d\n  roll:\n    max_age: 5ms\n", "lake.roll.max_age", "    max_age: 5ms", "must be between 100ms and 1h, got 5ms"},
		{"lake:\n  dir: d\n  retention:\n    max_age: 10m\n", "lake.retention.max_age", "    max_age: 10m", "must be at least 1h (or 0: keep), got 10m0s"},
		{"lake:\n  dir: d\n  retention:\n    max_bytes: 5\n", "lake.retention.max_bytes", "    max_bytes: 5", "must be at least 1 MiB (1048576) (or 0: no bound), got 5"},
		{"lake:\n  dir: d\n  colour: red\n", "lake.colour", "  colour: red", "unknown"},
	} {
		t.Run(tc.field, func(t *testing.T) {
			checkSpecError(t, baseSpec+tc.block, tc.field, tc.at, tc.msg)
		})
	}
	eos := strings.Replace(baseSpec, "kafka:\n", "kafka:\n  exactly_once: true\n", 1)
	if eos == baseSpec {
		eos = baseSpec + "kafka: {exactly_once: true}\n"
	}
	checkSpecError(t, eos+"lake:\n  dir: d\n", "lake", "lake:", "cannot be combined with kafka.exactly_once")
}
