package governance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

// DefaultMaxAuditEventBytes is AuditForwarderConfig.MaxEventBytes'
// default: under the 1 MiB that brokers take by default
// (message.max.bytes), with room for the record's key and headers.
const DefaultMaxAuditEventBytes = 900 << 10

// AuditForwarderConfig configures an AuditForwarder. Registry, Publisher,
// Cursors, CursorKey, Topic, Model and Holder are required.
type AuditForwarderConfig struct {
	Registry  *registry.Registry
	Publisher JSONPublisher
	Cursors   CursorStore
	// CursorKey names this forwarder's cursor in Cursors: one per topic
	// and model.
	CursorKey string
	// LegacyCursorKey, when set, is where an older version kept the cursor
	// (one per topic); a forwarder without a cursor of its own starts from
	// it, so that an upgrade does not publish the stream again.
	LegacyCursorKey string
	// Topic receives the events.
	Topic string
	// Model is the model whose events go to Topic, with the events of no
	// model (token changes: they concern the admin API that every pipeline
	// on the Redis shares). Pipelines that share a Redis share one audit
	// stream; each forwards its own model's events only.
	Model string
	// Holder names this instance on the forwarder's lease.
	Holder string
	// Interval is how often it forwards (default 1s).
	Interval time.Duration
	// MaxEventBytes bounds an event's JSON (default
	// DefaultMaxAuditEventBytes); a longer event is never published: it is
	// logged with its id, counted and skipped.
	MaxEventBytes int
	// Unpublishable, when set, tells a publish error that no retry mends
	// (the broker refused the record as too large), whose event is logged,
	// counted and skipped, from one worth retrying (the broker is down).
	Unpublishable func(error) bool
	// Registerer, when set, receives driftline_audit_events_skipped_total.
	Registerer prometheus.Registerer
	Log        *slog.Logger
}

// AuditForwarder copies the registry's audit stream (the source of truth:
// registrations, alias and traffic moves, gate decisions, overrides,
// retrain requests) to the audit topic, one JSON record per event
// (registry.Event's JSON, keyed by model), at least once and in stream
// order: the events of its model and those of no model. One instance
// forwards a model's events to a topic at a time: the holder of their
// lease reads the stream after a cursor and publishes event by event; the
// cursor moves past each event published (or skipped), so a crash
// repeats events (consumers dedupe by the event's id) and never skips one.
//
// A publish that fails stops the step, to be tried again at the next one,
// unless the event can never be published (longer than MaxEventBytes, or
// refused as Unpublishable): that event is logged with its id, counted in
// driftline_audit_events_skipped_total and skipped, so that one bad event
// cannot stall the forwarding of every later one.
type AuditForwarder struct {
	reg           *registry.Registry
	pub           JSONPublisher
	cursors       CursorStore
	topic         string
	model         string
	holder        string
	cursorKey     string
	legacyCursor  string
	interval      time.Duration
	maxEventBytes int
	unpublishable func(error) bool
	skipped       prometheus.Counter
	log           *slog.Logger
	failures      OutageLog
}

// auditForwarderLease names the lease of the forwarder of model's events
// to topic: one per topic and model, as the cursor is. A name too long for
// a lease is shortened to a hash.
func auditForwarderLease(topic, model string) string {
	name := "audit-forwarder." + topic + "." + model
	if registry.ValidName(name) {
		return name
	}
	h := sha256.Sum256([]byte(topic + "\x00" + model))
	return "audit-forwarder." + hex.EncodeToString(h[:16])
}

// NewAuditForwarder validates cfg and builds the forwarder.
func NewAuditForwarder(cfg AuditForwarderConfig) (*AuditForwarder, error) {
	switch {
	case cfg.Registry == nil || cfg.Publisher == nil || cfg.Cursors == nil:
		return nil, errors.New("audit forwarder: registry, publisher and cursor store are required")
	case cfg.Topic == "" || cfg.CursorKey == "" || cfg.Holder == "" || cfg.Model == "":
		return nil, errors.New("audit forwarder: topic, model, cursor key and holder are required")
	case cfg.Interval < 0:
		return nil, fmt.Errorf("audit forwarder: negative interval %s", cfg.Interval)
	case cfg.MaxEventBytes < 0:
		return nil, fmt.Errorf("audit forwarder: negative max event bytes %d", cfg.MaxEventBytes)
	}
	f := &AuditForwarder{reg: cfg.Registry, pub: cfg.Publisher, cursors: cfg.Cursors, topic: cfg.Topic, model: cfg.Model,
		holder: cfg.Holder, cursorKey: cfg.CursorKey, legacyCursor: cfg.LegacyCursorKey, interval: cfg.Interval,
		maxEventBytes: cfg.MaxEventBytes, unpublishable: cfg.Unpublishable, log: cfg.Log}
	if f.interval == 0 {
		f.interval = time.Second
	}
	if f.maxEventBytes == 0 {
		f.maxEventBytes = DefaultMaxAuditEventBytes
	}
	if f.log == nil {
		f.log = slog.Default()
	}
	f.skipped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "driftline_audit_events_skipped_total",
		Help: "Audit events the forwarder could never publish to the audit topic (too large), logged with their id and skipped.",
	})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(f.skipped); err != nil {
			return nil, fmt.Errorf("audit forwarder: %w", err)
		}
	}
	f.failures = OutageLog{Log: f.log, Msg: "audit forwarder"}
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
			_ = f.reg.ReleaseLease(stopCtx, auditForwarderLease(f.topic, f.model), f.holder)
			return nil
		case <-t.C:
			_, err := f.forward(ctx)
			switch {
			case ctx.Err() != nil:
			case err != nil:
				f.failures.Failed(err, "topic", f.topic)
			default:
				f.failures.OK("topic", f.topic)
			}
		}
	}
}

// forward publishes the events after the cursor, when this instance holds
// the lease, and returns how many it published.
func (f *AuditForwarder) forward(ctx context.Context) (int, error) {
	held, err := f.reg.TryLease(ctx, auditForwarderLease(f.topic, f.model), f.holder, 3*f.interval)
	if err != nil || !held {
		return 0, err
	}
	cursor, err := f.cursors.Get(ctx, f.cursorKey)
	if err == nil && cursor == "" && f.legacyCursor != "" {
		cursor, err = f.cursors.Get(ctx, f.legacyCursor)
	}
	if err != nil {
		return 0, fmt.Errorf("read cursor: %w", err)
	}
	total := 0
	for {
		evs, err := f.reg.ReadAudit(ctx, cursor, auditForwardBatch)
		if err != nil || len(evs) == 0 {
			return total, err
		}
		read := cursor
		for _, e := range evs {
			if e.Model == "" || e.Model == f.model {
				var published bool
				if published, err = f.publish(ctx, e); err != nil {
					break
				}
				if published {
					total++
				}
			}
			cursor = e.ID
		}
		if cursor != read {
			if serr := f.cursors.Set(ctx, f.cursorKey, cursor); serr != nil {
				return total, errors.Join(err, fmt.Errorf("write cursor: %w", serr))
			}
		}
		if err != nil || len(evs) < auditForwardBatch {
			return total, err
		}
	}
}

// publish publishes e (true), or skips it (logged, counted; false, nil)
// when it can never be published; other failures are returned, to be
// tried again.
func (f *AuditForwarder) publish(ctx context.Context, e registry.Event) (bool, error) {
	b, err := json.Marshal(e)
	if err != nil {
		f.skip(e, fmt.Errorf("encode: %w", err))
		return false, nil
	}
	if len(b) > f.maxEventBytes {
		f.skip(e, fmt.Errorf("%d bytes of JSON, over the limit of %d", len(b), f.maxEventBytes))
		return false, nil
	}
	if err := f.pub.PublishJSON(ctx, f.topic, e.Model, e); err != nil {
		if f.unpublishable != nil && f.unpublishable(err) {
			f.skip(e, err)
			return false, nil
		}
		return false, fmt.Errorf("publish event %s: %w", e.ID, err)
	}
	return true, nil
}

func (f *AuditForwarder) skip(e registry.Event, why error) {
	f.skipped.Inc()
	f.log.Error("audit forwarder: event can never be published; skipped (it stays in the registry's audit stream)",
		"id", e.ID, "model", e.Model, "what", e.What, "topic", f.topic, "err", why)
}
