package app

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/parquet/compress"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/connectors/lake"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
)

// lakeCodecs maps lake.compression onto Parquet codecs.
var lakeCodecs = map[string]compress.Compression{
	"snappy": compress.Codecs.Snappy,
	"zstd":   compress.Codecs.Zstd,
	"gzip":   compress.Codecs.Gzip,
	"lz4":    compress.Codecs.Lz4Raw,
}

// LakeConfig maps spec's lake block onto the live lake's config.
func LakeConfig(spec *pipeline.Spec) (lake.LiveConfig, error) {
	l := spec.Lake
	if l == nil {
		return lake.LiveConfig{}, fmt.Errorf("lake: the spec has no lake block")
	}
	codec, ok := lakeCodecs[l.Compression]
	if !ok {
		return lake.LiveConfig{}, fmt.Errorf("lake.compression: unknown codec %q", l.Compression)
	}
	return lake.LiveConfig{
		Events: lake.Config{
			Root:        l.Dir,
			TimeColumn:  spec.Schema.TimeField,
			MaxBytes:    l.Roll.MaxBytes,
			MaxAge:      l.Roll.MaxAge.D(),
			Compression: codec,
		},
		RetentionMaxAge:   l.Retention.MaxAge.D(),
		RetentionMaxBytes: l.Retention.MaxBytes,
	}, nil
}

// openLake opens the live lake when the spec has a lake block.
func (a *App) openLake() error {
	if a.spec.Lake == nil {
		return nil
	}
	cfg, err := LakeConfig(a.spec)
	if err != nil {
		return err
	}
	if a.lake, err = lake.OpenLive(cfg); err != nil {
		return fmt.Errorf("lake: %w", err)
	}
	return nil
}

// commitGate is both planes' offset-commit gate: the live lake, or none.
// A batch's offset mark waits until the events it scored and the labels
// it joined (early labels on the data plane, the others on the label
// plane) are in committed lake files.
func (a *App) commitGate() kafka.CommitGate {
	if a.lake == nil {
		return nil
	}
	return a.lake
}

// lakeBatch queues a scored batch's events for the live lake, when there
// is one, each with the version that served it.
func (a *App) lakeBatch(ctx context.Context, b *pipeline.Batch, served stages.Served) error {
	if a.lake == nil {
		return nil
	}
	if err := a.lake.Append(ctx, b, a.championVersion(), served.Versions); err != nil {
		return fmt.Errorf("lake: %w", err)
	}
	return nil
}

// lakeOutcome adds a joined label to the live lake's labels table. Its
// event id is the one the label joined on: the label record's, which
// equals the events table's because the spec refuses to anonymize or
// rewrite schema.id_field (a pseudonymized id would never join).
func (a *App) lakeOutcome(o stages.Outcome) {
	if a.lake == nil || o.ID == "" {
		return
	}
	src := lake.SourceOffset{Topic: o.Source.Topic, Partition: o.Source.Partition, Offset: o.Source.Offset}
	a.lake.AppendLabel(lake.LabelRow{EventID: o.ID, Label: o.Label, Score: o.Score, ModelVersion: o.Version, At: o.At, Source: src})
}

// runLake runs the live lake's writer while run runs, and stops it (which
// commits what is left) after run returned: the data plane flushes it
// before its final offset commit, so it must outlive the data plane.
func (a *App) runLake(ctx context.Context, run func(context.Context) error) error {
	if a.lake == nil {
		return run(ctx)
	}
	lakeCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- a.lake.Run(lakeCtx) }()
	err := run(ctx)
	stop()
	if lerr := <-done; lerr != nil && err == nil {
		err = fmt.Errorf("lake: %w", lerr)
	}
	return err
}
