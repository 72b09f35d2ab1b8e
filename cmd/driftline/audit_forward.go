package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/connectors/watermillkafka"
	"github.com/driftline/driftline/models/registry"
)

// auditForwardBatch is how many audit events one forward step reads.
const auditForwardBatch = 500

// auditForwarder copies the registry's audit stream (the source of truth:
// registrations, alias and traffic moves, gate decisions, overrides,
// retrain requests) to the audit topic, one JSON record per event (the
// admin API's auditEvent, keyed by model), at least once and in stream
// order. One instance forwards to a topic at a time: the holder of the
// topic's "audit-forwarder.<topic>" lease reads the stream after a cursor kept in Redis,
// publishes through watermill over franz-go, and only then advances the
// cursor, so a crash between the two repeats events (consumers dedupe by
// the event's id) and never skips one.
type auditForwarder struct {
	reg       *registry.Registry
	rdb       redis.UniversalClient
	pub       *watermillkafka.Publisher
	topic     string
	holder    string
	cursorKey string
	interval  time.Duration
	log       *slog.Logger
}

// auditForwarderLease names the lease of the forwarder to topic: one per
// topic, as the cursor is.
func auditForwarderLease(topic string) string { return "audit-forwarder." + topic }

func newAuditForwarder(reg *registry.Registry, rdb redis.UniversalClient, brokers []string, topic, holder string, log *slog.Logger) (*auditForwarder, error) {
	pub, err := watermillkafka.NewPublisher(watermillkafka.PublisherConfig{Brokers: brokers})
	if err != nil {
		return nil, fmt.Errorf("audit topic %s: %w", topic, err)
	}
	return &auditForwarder{reg: reg, rdb: rdb, pub: pub, topic: topic, holder: holder,
		cursorKey: defaultAdminKeyPrefix + ":audit-forwarder:" + topic, interval: time.Second, log: log}, nil
}

// Run forwards every interval until ctx ends, then once more, and closes
// the publisher.
func (f *auditForwarder) Run(ctx context.Context) {
	defer f.pub.Close()
	t := time.NewTicker(f.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if _, err := f.forward(stopCtx); err != nil {
				f.log.Warn("audit forwarder: at stop", "err", err)
			}
			_ = f.reg.ReleaseLease(stopCtx, auditForwarderLease(f.topic), f.holder)
			return
		case <-t.C:
			if _, err := f.forward(ctx); err != nil && ctx.Err() == nil {
				f.log.Warn("audit forwarder", "topic", f.topic, "err", err)
			}
		}
	}
}

// forward publishes the events after the cursor, when this instance holds
// the lease, and returns how many it published.
func (f *auditForwarder) forward(ctx context.Context) (int, error) {
	held, err := f.reg.TryLease(ctx, auditForwarderLease(f.topic), f.holder, 3*f.interval)
	if err != nil || !held {
		return 0, err
	}
	cursor, err := f.rdb.Get(ctx, f.cursorKey).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("read cursor: %w", err)
	}
	total := 0
	for {
		evs, err := f.reg.ReadAudit(ctx, cursor, auditForwardBatch)
		if err != nil || len(evs) == 0 {
			return total, err
		}
		for _, e := range evs {
			if err := watermillkafka.PublishJSON(ctx, f.pub, f.topic, e.Model, toAuditEvent(e)); err != nil {
				return total, fmt.Errorf("publish event %s: %w", e.ID, err)
			}
		}
		cursor = evs[len(evs)-1].ID
		if err := f.rdb.Set(ctx, f.cursorKey, cursor, 0).Err(); err != nil {
			return total, fmt.Errorf("write cursor: %w", err)
		}
		total += len(evs)
		if len(evs) < auditForwardBatch {
			return total, nil
		}
	}
}
