package registry

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Audit event kinds written by the registry itself. Other writers (the rollout
// controller, the admin API) use their own What values.
const (
	WhatRegister    = "register"
	WhatAliasSet    = "alias.set"
	WhatAliasDelete = "alias.delete"
	WhatTrafficSet  = "traffic.set"
)

// RetrainRequest is an operator's request to retrain a model, as the admin
// API records it and the governor consumes it.
type RetrainRequest struct {
	// ID is the request's position in the requests log (unique, ordered).
	ID    string
	Model string
	// Who asked, and why.
	Who, Why string
}

// Event is one audit log entry. Its JSON form is the one the admin API
// answers and the audit topic carries.
type Event struct {
	// ID is the stream entry ID, set by ReadAudit and ignored by AppendAudit.
	ID   string    `json:"id"`
	When time.Time `json:"when"`
	Who  string    `json:"who"`
	What string    `json:"what"`
	// Model is empty when the event concerns no single model.
	Model string `json:"model,omitempty"`
	// Version is 0 when the event concerns no single version.
	Version int64             `json:"version,omitempty"`
	Why     string            `json:"why,omitempty"`
	Details map[string]string `json:"details,omitempty"`
}

// Stream field names. Details are stored one field each, as "d.<key>".
const detailPrefix = "d."

// fields encodes e as stream field/value pairs, omitting an empty Why, a zero Version
// and the ID.
func (e Event) fields() []any {
	f := []any{"who", e.Who, "what", e.What, "model", e.Model, "when", e.When.UTC().Format(time.RFC3339Nano)}
	if e.Version != 0 {
		f = append(f, "version", strconv.FormatInt(e.Version, 10))
	}
	if e.Why != "" {
		f = append(f, "why", e.Why)
	}
	for k, v := range e.Details {
		f = append(f, detailPrefix+k, v)
	}
	return f
}

func decodeEvent(m redis.XMessage) (Event, error) {
	e := Event{ID: m.ID}
	for k, raw := range m.Values {
		s, ok := raw.(string)
		if !ok {
			return Event{}, fmt.Errorf("%w: audit entry %s field %s is %T", ErrCorrupt, m.ID, k, raw)
		}
		var err error
		switch {
		case k == "who":
			e.Who = s
		case k == "what":
			e.What = s
		case k == "model":
			e.Model = s
		case k == "why":
			e.Why = s
		case k == "version":
			e.Version, err = strconv.ParseInt(s, 10, 64)
		case k == "when":
			e.When, err = time.Parse(time.RFC3339Nano, s)
		case strings.HasPrefix(k, detailPrefix):
			if e.Details == nil {
				e.Details = make(map[string]string)
			}
			e.Details[strings.TrimPrefix(k, detailPrefix)] = s
		}
		if err != nil {
			return Event{}, fmt.Errorf("%w: audit entry %s field %s: %w", ErrCorrupt, m.ID, k, err)
		}
	}
	return e, nil
}

// AppendAudit appends e to the audit stream, trimmed to about Config.AuditMaxLen
// entries, and returns its stream ID. Who and What are required; a zero When becomes
// the registry clock's now.
func (r *Registry) AppendAudit(ctx context.Context, e Event) (string, error) {
	if e.Who == "" || e.What == "" {
		return "", fmt.Errorf("%w: audit event needs who and what", ErrInvalid)
	}
	if e.When.IsZero() {
		e.When = r.now()
	}
	id, err := r.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: r.auditKey(), MaxLen: r.cfg.AuditMaxLen, Approx: true, Values: e.fields(),
	}).Result()
	if err != nil {
		return "", fmt.Errorf("registry: append audit event: %w", err)
	}
	return id, nil
}

// ReadAudit returns up to count audit events with stream IDs after from, oldest first;
// from "" or "0" reads from the start. Pass the ID of the last event returned to read
// on. It returns no events, and no error, when there are none after from.
func (r *Registry) ReadAudit(ctx context.Context, from string, count int64) ([]Event, error) {
	if count < 1 {
		return nil, fmt.Errorf("%w: audit read count %d", ErrInvalid, count)
	}
	if from == "" {
		from = "0"
	}
	streams, err := r.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{r.auditKey(), from}, Count: count, Block: -1}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("registry: read audit after %s: %w", from, err)
	}
	var out []Event
	for _, s := range streams {
		for _, m := range s.Messages {
			e, err := decodeEvent(m)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// PreviousChampion is the version that served as model's champion before
// cur, read from the audit trail: the champion alias moves, replayed as a
// stack (a move pushes its target; a rollback — details action=rollback,
// from the admin API or the governor — pops the version rolled back from).
// It returns the version under cur on the stack, or 0 when there is none.
// This is the one definition of "previous champion": rollbacks by the admin
// API and by the governor both use it.
func (r *Registry) PreviousChampion(ctx context.Context, model string, cur int64) (int64, error) {
	const page = 1000
	var stack []int64
	from := "0"
	for {
		evs, err := r.ReadAudit(ctx, from, page)
		if err != nil {
			return 0, err
		}
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			from = e.ID
			if e.Model != model || e.Details["alias"] != AliasChampion {
				continue
			}
			switch e.What {
			case WhatAliasDelete:
				stack = stack[:0]
			case WhatAliasSet:
				prev, _ := strconv.ParseInt(e.Details["from"], 10, 64)
				to, err := strconv.ParseInt(e.Details["to"], 10, 64)
				if err != nil {
					continue
				}
				if len(stack) == 0 && prev != 0 {
					stack = append(stack, prev)
				}
				if e.Details["action"] == "rollback" {
					if n := len(stack); n > 0 && stack[n-1] == prev {
						stack = stack[:n-1]
					}
					if n := len(stack); n > 0 && stack[n-1] == to {
						continue
					}
				}
				stack = append(stack, to)
			}
		}
	}
	if n := len(stack); n >= 2 && stack[n-1] == cur {
		return stack[n-2], nil
	}
	return 0, nil
}

// ReadAuditBefore returns up to count audit events with stream IDs before
// before, newest first; before "" or "+" reads from the newest event. Pass
// the ID of the last (oldest) event returned to read further back. It
// returns no events, and no error, when there are none before before.
func (r *Registry) ReadAuditBefore(ctx context.Context, before string, count int64) ([]Event, error) {
	if count < 1 {
		return nil, fmt.Errorf("%w: audit read count %d", ErrInvalid, count)
	}
	end := "+"
	if before != "" && before != "+" {
		end = "(" + before
	}
	msgs, err := r.rdb.XRevRangeN(ctx, r.auditKey(), end, "-", count).Result()
	if err != nil {
		return nil, fmt.Errorf("registry: read audit before %s: %w", before, err)
	}
	out := make([]Event, 0, len(msgs))
	for _, m := range msgs {
		e, err := decodeEvent(m)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}
