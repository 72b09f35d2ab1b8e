package governance

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/driftline/driftline/models/registry"
)

// errLeaseLost: the governor lease was lost while a retrain job ran.
var errLeaseLost = errors.New("governor lease lost")

// takeTriggers queues the error-drift alerts and retrain requests this
// instance saw since its previous tick in the registry, where the lease
// holder finds them (runRetrains). Every instance queues what it sees, so
// a trigger that arrives while the holder is away, or whose holder dies
// mid-retrain, is not lost; the queue keeps one entry per trigger key. A
// trigger the registry did not take (it did not answer) is tried again
// next tick. Without a retrain job triggers are not queued.
func (g *Governor) takeTriggers(ctx context.Context) {
	triggers, seen := g.source.alertTriggers()
	g.trackDrift(seen)
	if g.retrain == nil {
		return
	}
	reqs, err := g.source.requestTriggers(ctx)
	if err != nil {
		g.log.Warn("governor: retrain requests", "err", err)
	}
	if fresh := append(triggers, reqs...); len(fresh) > 0 {
		now := g.now()
		for _, tr := range fresh {
			g.unqueued = append(g.unqueued, registry.QueuedRetrain{Kind: tr.Kind, Key: tr.Key, Reason: tr.Reason, Since: now})
		}
	}
	keep := g.unqueued[:0]
	for _, q := range g.unqueued {
		_, err := g.reg.QueueRetrain(ctx, g.model, q)
		switch {
		case errors.Is(err, registry.ErrInvalid):
			g.log.Warn("governor: retrain trigger refused by the registry; dropped", "trigger", q.Kind, "key", q.Key, "err", err)
		case err != nil:
			keep = append(keep, q)
		}
	}
	clear(g.unqueued[len(keep):])
	g.unqueued = keep
}

// runRetrains, on the lease holder, runs a retrain job for each queued
// trigger that is due (with sinceDrift, a drift trigger once enough rows
// are labelled after it was queued) and for the schedule, and marks each
// queued trigger done once its job ended, successfully or not, except for
// a since-drift job that found too few rows, which is tried again later.
// It stops and reports lost when the lease was lost during a job: that
// job's trigger stays queued for the next holder.
func (g *Governor) runRetrains(ctx context.Context) (lost bool) {
	if g.retrain == nil {
		return false
	}
	now := g.now()
	queued, err := g.reg.QueuedRetrains(ctx, g.model)
	if err != nil {
		g.log.Warn("governor: queued retrains", "err", err)
	} else {
		g.setQueued(len(queued))
	}
	var due []registry.QueuedRetrain
	for _, q := range queued {
		if now.Before(g.retryAfter[q.Key]) {
			continue
		}
		if g.sinceDrift && q.Kind == "drift" {
			n, err := g.retrain.rows.CountSince(ctx, q.Since)
			if err != nil {
				g.log.Warn("governor: count rows for a retrain", "err", err)
			}
			if n < max(g.retrain.minRows, 1) {
				continue
			}
		}
		due = append(due, q)
	}
	if g.every > 0 {
		if g.nextSchedule.IsZero() {
			g.nextSchedule = now.Add(g.every)
		} else if !now.Before(g.nextSchedule) {
			g.nextSchedule = now.Add(g.every)
			due = append(due, registry.QueuedRetrain{Kind: "schedule", Key: "every " + g.every.String(),
				Reason: "scheduled retrain every " + g.every.String()})
		}
	}
	for _, q := range due {
		var since time.Time
		if q.Kind == "drift" && g.sinceDrift {
			since = q.Since
		}
		tr := retrainTrigger{Kind: q.Kind, Key: q.Key, Reason: q.Reason}
		var v registry.Version
		lost, err := g.holdingLease(ctx, func(ctx context.Context) (err error) {
			v, err = g.retrain.run(ctx, tr, since)
			return err
		})
		switch {
		case lost:
			g.log.Warn("governor: lease lost during a retrain; its trigger stays queued for the next holder",
				"trigger", q.Kind, "key", q.Key, "err", err)
			return true
		case errors.Is(err, ErrRetrainNoData) && !since.IsZero():
			// Not yet enough rows after the alert: try again later.
			if g.retryAfter == nil {
				g.retryAfter = map[string]time.Time{}
			}
			g.retryAfter[q.Key] = now.Add(retrainRetryIntervals * g.interval)
			g.log.Info("governor: retrain waits for more rows after the alert", "key", q.Key, "err", err)
			continue
		case err != nil:
			g.log.Warn("governor: retrain", "trigger", q.Kind, "key", q.Key, "err", err)
		default:
			g.log.Info("governor: retrained", "model", g.model, "version", v.Number, "parent", v.Lineage.Parent, "trigger", q.Kind)
		}
		delete(g.retryAfter, q.Key)
		if q.Kind == "schedule" {
			continue
		}
		if err := g.reg.FinishRetrain(ctx, g.model, q.Key); err != nil {
			// The next tick finds it queued and retrains again.
			g.log.Warn("governor: mark a retrain trigger done", "key", q.Key, "err", err)
		}
	}
	return false
}

// holdingLease runs job, renewing the governor lease every interval
// meanwhile, and cancels job's context when the lease is lost: a renewal
// finds another holder, or none succeeded for the lease's TTL since the
// last that did was sent (the tick's, g.leaseSent, at first), after which
// another instance may hold it. lost reports that (a job that succeeded
// before it noticed reports its success). err is job's.
func (g *Governor) holdingLease(ctx context.Context, job func(context.Context) error) (lost bool, err error) {
	ttl := g.leaseTTL()
	jobCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	renewed := g.leaseSent
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(g.interval)
		defer t.Stop()
		for {
			select {
			case <-jobCtx.Done():
				return
			case <-t.C:
			}
			sent := time.Now()
			held, err := g.reg.TryLease(jobCtx, governorLease(g.model), g.holder, ttl)
			switch {
			case err == nil && held:
				renewed = sent
			case err == nil:
				cancel(errLeaseLost)
				return
			case time.Since(renewed) >= ttl:
				cancel(fmt.Errorf("%w: not renewed for %s: %w", errLeaseLost, ttl, err))
				return
			}
		}
	}()
	err = job(jobCtx)
	cancel(nil)
	<-stopped
	g.leaseSent = renewed
	return err != nil && errors.Is(context.Cause(jobCtx), errLeaseLost), err
}
