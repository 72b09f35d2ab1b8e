package app

import (
	"context"
	"fmt"
	"time"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/connectors/redis"
	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
)

// dependencyRedis and dependencyKafka name Redis and the brokers in the
// health metrics and /readyz.
const (
	dependencyRedis = "redis"
	dependencyKafka = "kafka"
)

// redisProbeInterval is how often watchRedis pings Redis; it bounds how
// long /readyz lags an outage's start and end when no loop touches Redis.
const redisProbeInterval = time.Second

// classifyFailure is the partition loops' retry classifier: a call that
// failed because Redis or the brokers are unavailable is transient (the
// batch is retried, and /readyz names the dependency); any other failure
// stops the plane. Redis's errors are marked by its client, so a network
// error or a deadline that is not Redis's is the brokers', the loops'
// only other network dependency.
func classifyFailure(err error) (dep, reason string, ok bool) {
	if reason, ok := redis.Unavailable(err); ok {
		return dependencyRedis, reason, true
	}
	if reason, ok := kafka.Unavailable(err); ok {
		return dependencyKafka, reason, true
	}
	return "", "", false
}

// watchRedis pings Redis every redisProbeInterval until ctx ends and tells
// the health of what it finds, so that /readyz follows Redis even when no
// event flows; the loops that wait for Redis wake when it is back.
func (a *App) watchRedis(ctx context.Context) {
	t := time.NewTicker(redisProbeInterval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, redisProbeInterval)
		err := a.rdb.Ping(pctx).Err()
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			a.health.Up(dependencyRedis)
		default:
			reason, ok := redis.Unavailable(err)
			if !ok {
				reason = "answers with an error"
			}
			if a.health.IsUp(dependencyRedis) {
				a.log.Warn("redis: ping failed", "err", err)
			}
			a.health.Down(dependencyRedis, reason)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// start is Run's start-up: it waits for Redis and, under a rollout block,
// serves the registry's champion (servedChampion), retrying while Redis is
// unavailable (capped backoff, not ready meanwhile) until ctx ends, which
// returns nil. Any other failure is returned.
func (a *App) start(ctx context.Context) error {
	retries := pipeline.Retries{Policy: a.retry}
	for {
		err := a.bootstrap(ctx)
		if err == nil {
			retries.Succeeded()
			a.started.Store(true)
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		if retries.Tries() == 0 {
			a.log.Warn("start-up: waiting for redis (not ready)", "err", err)
		}
		if !retries.Failed(ctx, nil, err) {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("start-up: %w", err)
		}
	}
}

// bootstrap checks that Redis answers and, under a rollout block, swaps the
// registry's champion into the arms.
func (a *App) bootstrap(ctx context.Context) error {
	if err := a.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	if a.spec.Rollout == nil || a.arms == nil {
		return nil
	}
	fresh := a.champion.Snapshot()
	learner, version, err := servedChampion(ctx, a.models, a.spec, fresh, a.signature, a.holder, a.log)
	if err != nil {
		return err
	}
	a.serveChampion(learner, version)
	return nil
}

// serveChampion makes learner, of the registry's version, the champion.
func (a *App) serveChampion(learner models.Learner, version string) {
	a.champion = stages.NewServedModel(a.spec.Model.Name, version, stages.ArmChampion, learner)
	if err := a.arms.Set(stages.ArmChampion, a.champion); err != nil {
		a.log.Error("start-up: serve the champion", "err", err) // an arm named by the code: cannot happen
	}
	a.onArms(a.arms.Load())
}

// NotReady lists why the App does not serve now, one short line each (no
// address or secret: /readyz shows them to anyone): not started, no
// partition assignment, the learner state not restored, a dependency down. It is empty when ready.
func (a *App) NotReady() []string {
	var out []string
	if !a.started.Load() {
		out = append(out, "starting: waiting for redis")
	} else if !a.kc.Ready() {
		out = append(out, "kafka: no partition assignment yet")
	}
	if a.state != nil && !a.state.follower.Ready() {
		out = append(out, "learner state: restoring from the model_state topic")
	}
	return append(out, a.health.Problems()...)
}
