package governance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/driftline/driftline/models/registry"
)

// auditForwardBatch is how many audit events one forward step reads.
const auditForwardBatch = 500

// JSONPublisher publishes v as one JSON record with key to topic, and
// returns once the broker has it. The control plane's watermill publisher
// over franz-go implements it.
type JSONPublisher interface {
	PublishJSON(ctx context.Context, topic, key string, v any) error
}

// CursorStore keeps the audit forwarder's cursor: the ID of the last audit
// event published to a topic.
type CursorStore interface {
	// Get returns the cursor under key ("" when unset).
	Get(ctx context.Context, key string) (string, error)
	Set(ctx context.Context, key, value string) error
}

// AuditForwarderConfig configures an AuditForwarder; every field but
// Interval and Log is required.
type AuditForwarderConfig struct {
	Registry  *registry.Registry
	Publisher JSONPublisher
	Cursors   CursorStore
	// CursorKey names this topic's cursor in Cursors.
	CursorKey string
	// Topic receives the events.
	Topic string
	// Holder names this instance on the topic's forwarder lease.
	Holder string
	// Interval is how often it forwards (default 1s).
	Interval time.Duration
	Log      *slog.Logger
}

// AuditForwarder copies the registry's audit stream (the source of truth:
// registrations, alias and traffic moves, gate decisions, overrides,
// retrain requests) to the audit topic, one JSON record per event
// (registry.Event's JSON, keyed by model), at least once and in stream
// order. One instance forwards to a topic at a time: the holder of the
// topic's "audit-forwarder.<topic>" lease reads the stream after a cursor,
// publishes, and only then advances the cursor, so a crash between the two
// repeats events (consumers dedupe by the event's id) and never skips one.
type AuditForwarder struct {
	reg       *registry.Registry
	pub       JSONPublisher
	cursors   CursorStore
	topic     string
	holder    string
	cursorKey string
	interval  time.Duration
	log       *slog.Logger
}

// auditForwarderLease names the lease of the forwarder to topic: one per
// topic, as the cursor is.
func auditForwarderLease(topic string) string { return "audit-forwarder." + topic }

// NewAuditForwarder validates cfg and builds the forwarder.
func NewAuditForwarder(cfg AuditForwarderConfig) (*AuditForwarder, error) {
	switch {
	case cfg.Registry == nil || cfg.Publisher == nil || cfg.Cursors == nil:
		return nil, errors.New("audit forwarder: registry, publisher and cursor store are required")
	case cfg.Topic == "" || cfg.CursorKey == "" || cfg.Holder == "":
		return nil, errors.New("audit forwarder: topic, cursor key and holder are required")
	case cfg.Interval < 0:
		return nil, fmt.Errorf("audit forwarder: negative interval %s", cfg.Interval)
	}
	f := &AuditForwarder{reg: cfg.Registry, pub: cfg.Publisher, cursors: cfg.Cursors, topic: cfg.Topic,
		holder: cfg.Holder, cursorKey: cfg.CursorKey, interval: cfg.Interval, log: cfg.Log}
	if f.interval == 0 {
		f.interval = time.Second
	}
	if f.log == nil {
		f.log = slog.Default()
	}
	return f, nil
}

// Run forwards every interval until ctx ends, then once more, and gives
// up the lease. Failures are logged and retried; it returns nil.
func (f *AuditForwarder) Run(ctx context.Context) error {
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
			return nil
		case <-t.C:
			if _, err := f.forward(ctx); err != nil && ctx.Err() == nil {
				f.log.Warn("audit forwarder", "topic", f.topic, "err", err)
			}
		}
	}
}

// forward publishes the events after the cursor, when this instance holds
// the lease, and returns how many it published.
func (f *AuditForwarder) forward(ctx context.Context) (int, error) {
	held, err := f.reg.TryLease(ctx, auditForwarderLease(f.topic), f.holder, 3*f.interval)
	if err != nil || !held {
		return 0, err
	}
	cursor, err := f.cursors.Get(ctx, f.cursorKey)
	if err != nil {
		return 0, fmt.Errorf("read cursor: %w", err)
	}
	total := 0
	for {
		evs, err := f.reg.ReadAudit(ctx, cursor, auditForwardBatch)
		if err != nil || len(evs) == 0 {
			return total, err
		}
		for _, e := range evs {
			if err := f.pub.PublishJSON(ctx, f.topic, e.Model, e); err != nil {
				return total, fmt.Errorf("publish event %s: %w", e.ID, err)
			}
		}
		cursor = evs[len(evs)-1].ID
		if err := f.cursors.Set(ctx, f.cursorKey, cursor); err != nil {
			return total, fmt.Errorf("write cursor: %w", err)
		}
		total += len(evs)
		if len(evs) < auditForwardBatch {
			return total, nil
		}
	}
}
