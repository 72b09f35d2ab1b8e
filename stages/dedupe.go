package stages

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/pipeline"
)

// Dedupe drops events whose id was seen within the TTL. It keeps one Redis
// key per event id, written with SET NX GET in one pipelined round trip per
// batch. The key's value is the event's source position, so an event that
// is redelivered after a crash (same topic, partition and offset) is not
// mistaken for its own duplicate and is processed again: at-least-once
// delivery loses nothing. A Dedupe is used by one partition loop at a time.
type Dedupe struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
	idCol  int
	keys   [][]byte
	vals   [][]byte
	rows   []int
}

// NewDedupe builds the stage; keys are prefix+"dedupe:"+id.
func NewDedupe(spec *pipeline.Spec, rdb redis.UniversalClient) *Dedupe {
	return &Dedupe{
		rdb:    rdb,
		prefix: spec.Redis.KeyPrefix + "dedupe:",
		ttl:    spec.Stages.Dedupe.TTL.D(),
		idCol:  spec.FieldIndex(spec.Schema.IDField),
	}
}

// Name implements pipeline.Stage.
func (d *Dedupe) Name() string { return "dedupe" }

// Process implements pipeline.Stage.
func (d *Dedupe) Process(ctx context.Context, b *pipeline.Batch) error {
	d.rows = d.rows[:0]
	pipe := d.rdb.Pipeline()
	cmds := make([]*redis.StatusCmd, 0, b.Len())
	for i := 0; i < b.Len(); i++ {
		if !b.OK(i) {
			continue
		}
		n := len(d.rows)
		if n == len(d.keys) {
			d.keys = append(d.keys, nil)
			d.vals = append(d.vals, nil)
		}
		d.keys[n] = appendEventID(append(d.keys[n][:0], d.prefix...), b, d.idCol, i)
		d.vals[n] = sourcePosition(d.vals[n][:0], &b.Messages[i])
		d.rows = append(d.rows, i)
		cmds = append(cmds, pipe.SetArgs(ctx, string(d.keys[n]), d.vals[n], redis.SetArgs{Mode: "NX", Get: true, TTL: d.ttl}))
	}
	if len(cmds) == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("dedupe: redis pipeline: %w", err)
	}
	for n, cmd := range cmds {
		prev, err := cmd.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return fmt.Errorf("dedupe: redis set: %w", err)
		}
		if prev != string(d.vals[n]) {
			b.MarkDuplicate(d.rows[n])
		}
	}
	return nil
}

// sourcePosition appends "topic/partition/offset".
func sourcePosition(dst []byte, m *pipeline.Message) []byte {
	dst = append(dst, m.Topic...)
	dst = append(dst, '/')
	dst = strconv.AppendInt(dst, int64(m.Partition), 10)
	dst = append(dst, '/')
	return strconv.AppendInt(dst, m.Offset, 10)
}
