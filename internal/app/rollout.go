package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/governance"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
)

// rolloutWatcher keeps a data plane's arms in step with the registry's
// aliases of spec.model.name: it polls them every rollout.watch_interval
// (registry.Watch) and, on each change, loads the learner snapshot of every
// newly aliased version and swaps it into the arms (stages.Arms.Set), which
// the partition loops pick up on their next batch. An alias move is
// therefore served within watch_interval + one poll + one artifact load +
// one batch, on every instance (TestRolloutHotSwap states the bound).
//
// The canary's share is the registry's traffic share for the model (the
// governor sets it at each canary step, registry.SetTraffic), or
// rollout.canary_percent from the spec while none was ever set. A version
// that does not load, or whose layout does not fit the features, is logged
// and not served; the arm keeps its model.
type rolloutWatcher struct {
	reg     *registry.Registry
	model   string
	arms    *stages.Arms
	percent int // the spec's canary_percent
	probe   models.Rows
	log     *slog.Logger
	// onArms sees the arms after every alias change applied.
	onArms func(stages.ArmsView)
	// logged returns the newest state of a version from the learner-state
	// log (ok false: none, or no log).
	logged func(version string) (l models.Learner, m stages.StateMark, ok bool, err error)
}

func newRolloutWatcher(spec *pipeline.Spec, reg *registry.Registry, arms *stages.Arms, numDense, numHashed int, log *slog.Logger, onArms func(stages.ArmsView),
	logged func(version string) (models.Learner, stages.StateMark, bool, error)) *rolloutWatcher {
	arms.SetCanaryPercent(spec.Rollout.CanaryPercent)
	probe := models.Rows{N: 1, NumDense: numDense, NumHashed: numHashed,
		Dense: make([]float32, numDense), Hashed: make([]int32, numHashed)}
	return &rolloutWatcher{reg: reg, model: spec.Model.Name, arms: arms, percent: spec.Rollout.CanaryPercent, probe: probe, log: log, onArms: onArms, logged: logged}
}

// servedChampion returns the learner and version a data plane with a
// rollout block starts serving as champion: the registry's champion alias
// (its snapshot) when the model has one, so a restart resumes from the
// registry and every served version is a registry version. For a model
// without one, fresh (the spec's untrained learner) is registered as a new
// version with who "bootstrap" and aliased champion by compare-and-set from
// unset. Instances starting together take turns with the registry lease
// bootstrapLease(model), held by holder, so that one registers and the
// others serve its version, and no loser leaves an unaliased version
// behind; a holder that stops mid-way lets the lease expire after
// bootstrapLeaseTTL, and the next one registers. It gives up after
// servedChampionTimeout.
func servedChampion(ctx context.Context, reg *registry.Registry, spec *pipeline.Spec, fresh models.Learner, sig registry.Signature, holder string, log *slog.Logger) (models.Learner, string, error) {
	ctx, cancel := context.WithTimeout(ctx, servedChampionTimeout)
	defer cancel()
	name := spec.Model.Name
	lease := bootstrapLease(name)
	for {
		v, err := reg.Resolve(ctx, name, registry.AliasChampion)
		if err == nil {
			data, err := reg.Artifact(ctx, name, v.Number, registry.ArtifactSnapshot)
			if err != nil {
				return nil, "", fmt.Errorf("rollout: champion version %d of %s: %w", v.Number, name, err)
			}
			l, err := models.UnmarshalLearner(data)
			if err != nil {
				return nil, "", fmt.Errorf("rollout: champion version %d of %s: %w", v.Number, name, err)
			}
			log.Info("rollout: serving the registry's champion", "model", name, "version", v.Number)
			return l, strconv.FormatInt(v.Number, 10), nil
		}
		if !errors.Is(err, registry.ErrNotFound) {
			return nil, "", fmt.Errorf("rollout: champion of %s: %w", name, err)
		}
		held, err := reg.TryLease(ctx, lease, holder, bootstrapLeaseTTL)
		if err != nil {
			return nil, "", fmt.Errorf("rollout: champion of %s: %w", name, err)
		}
		if !held { // another instance registers: serve its version
			select {
			case <-ctx.Done():
				return nil, "", fmt.Errorf("rollout: champion of %s: waiting for another instance, which holds the registry lease %s, to set one: %w", name, lease, ctx.Err())
			case <-time.After(bootstrapPoll):
			}
			continue
		}
		learner, version, err := registerChampion(ctx, reg, spec, fresh, sig, log)
		if rerr := reg.ReleaseLease(context.WithoutCancel(ctx), lease, holder); rerr != nil {
			log.Warn("rollout: release the bootstrap lease (it expires)", "lease", lease, "err", rerr)
		}
		if err != nil || learner != nil {
			return learner, version, err
		}
		// Another writer set the champion meanwhile: serve it.
	}
}

// The start-up's champion bootstrap: its lease's ttl, the wait of an
// instance that does not hold it, and the most a start waits in all.
const (
	bootstrapLeaseTTL     = 10 * time.Second
	bootstrapPoll         = 100 * time.Millisecond
	servedChampionTimeout = 30 * time.Second
)

// bootstrapLease names the registry lease of model's champion bootstrap.
func bootstrapLease(model string) string { return "bootstrap." + model }

// registerChampion registers fresh as a new version of spec's model and
// aliases it champion by compare-and-set from unset. It returns a nil
// learner, and no error, when the alias was set meanwhile (by a writer
// that did not take the bootstrap lease: an operator, or an older
// driftline); the version it registered then stays unaliased.
func registerChampion(ctx context.Context, reg *registry.Registry, spec *pipeline.Spec, fresh models.Learner, sig registry.Signature, log *slog.Logger) (models.Learner, string, error) {
	name := spec.Model.Name
	snap, err := fresh.MarshalBinary()
	if err != nil {
		return nil, "", err
	}
	nv, err := reg.Register(ctx, registry.Registration{Model: name, Signature: sig, Snapshot: snap, Who: "bootstrap",
		Why: "the spec's model, first served", Lineage: registry.Lineage{SpecHash: specHash(spec)}})
	if err != nil {
		return nil, "", fmt.Errorf("rollout: register %s: %w", name, err)
	}
	_, err = reg.MoveAlias(ctx, registry.AliasMove{Model: name, Alias: registry.AliasChampion, Version: nv.Number, Expect: 0,
		Who: "bootstrap", Why: "no champion yet: the spec's model"})
	switch {
	case err == nil:
		log.Info("rollout: registered the spec's model as champion", "model", name, "version", nv.Number)
		return fresh, strconv.FormatInt(nv.Number, 10), nil
	case errors.Is(err, registry.ErrConflict):
		return nil, "", nil
	default:
		return nil, "", fmt.Errorf("rollout: alias champion of %s: %w", name, err)
	}
}

// instanceName names this process on the registry's leases:
// host:pid:random.
func instanceName() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// rolloutRetryInterval is how often the watcher tries again to load a
// version whose artifact it could not read (Redis was down).
const rolloutRetryInterval = time.Second

// Run applies alias changes until ctx ends. A failed poll (Redis is down)
// keeps the arms as they are; the watch goes on polling, and the change
// that Redis holds once it is back is applied. A change whose artifacts
// could not be read is applied again every rolloutRetryInterval until they
// load.
func (w *rolloutWatcher) Run(ctx context.Context) {
	failures := governance.OutageLog{Log: w.log, Msg: "rollout: watch registry"}
	changes := w.reg.Watch(ctx, w.model)
	retry := time.NewTicker(rolloutRetryInterval)
	defer retry.Stop()
	var last registry.AliasSet
	incomplete := false
	for {
		select {
		case ch, ok := <-changes:
			if !ok {
				return
			}
			if ch.Err != nil {
				failures.Failed(ch.Err, "model", w.model)
				continue
			}
			failures.OK("model", w.model)
			last = ch.AliasSet
			incomplete = !w.apply(ctx, last)
		case <-retry.C:
			if incomplete {
				incomplete = !w.apply(ctx, last)
			}
		}
	}
}

// apply serves set's champion, canary and shadow versions and traffic. It
// reports false when a version's artifact could not be read (try again).
func (w *rolloutWatcher) apply(ctx context.Context, set registry.AliasSet) (complete bool) {
	complete = true
	percent := w.percent
	if set.TrafficSet {
		percent = set.CanaryPercent
	}
	if w.arms.Load().CanaryPercent != percent {
		w.arms.SetCanaryPercent(percent)
		w.log.Info("rollout: canary traffic", "model", w.model, "percent", percent)
	}
	canary := set.Versions[registry.AliasCanary]
	if canary == 0 {
		canary = set.Versions[registry.AliasChallenger]
	}
	view := w.arms.Load()
	for _, a := range []struct {
		arm     string
		version int64
		cur     *stages.ServedModel
	}{
		{stages.ArmChampion, set.Versions[registry.AliasChampion], view.Champion},
		{stages.ArmCanary, canary, view.Canary},
		{stages.ArmShadow, set.Versions[registry.AliasShadow], view.Shadow},
	} {
		if a.version == 0 {
			if a.arm != stages.ArmChampion && a.cur != nil {
				_ = w.arms.Set(a.arm, nil)
				w.log.Info("rollout: arm cleared", "model", w.model, "arm", a.arm)
			}
			continue
		}
		v := strconv.FormatInt(a.version, 10)
		if a.cur != nil && a.cur.Version == v {
			continue // same version: keep it, and what it learned
		}
		m, err := w.load(ctx, a.arm, a.version, view)
		if errors.Is(err, errArtifactUnread) {
			complete = false
			w.log.Warn("rollout: version not served yet; retrying", "model", w.model, "arm", a.arm, "version", v, "err", err)
			continue
		}
		if err != nil {
			w.log.Error("rollout: version not served", "model", w.model, "arm", a.arm, "version", v, "err", err)
			continue
		}
		if err := w.arms.Set(a.arm, m); err != nil {
			w.log.Error("rollout: set arm", "err", err)
			continue
		}
		w.log.Info("rollout: arm swapped", "model", w.model, "arm", a.arm, "version", v)
	}
	if w.onArms != nil {
		w.onArms(w.arms.Load())
	}
	return complete
}

// errArtifactUnread marks a version whose artifact could not be read from
// the registry (as opposed to one that does not load or fit).
var errArtifactUnread = errors.New("artifact not read")

// load builds the served model of version n for arm. A version already
// served on another arm (a canary promoted to champion) moves with what it
// learned online; any other comes from the learner-state log when it holds
// the version (what it learned when it was last served), else from its
// registry snapshot.
func (w *rolloutWatcher) load(ctx context.Context, arm string, n int64, view stages.ArmsView) (*stages.ServedModel, error) {
	v := strconv.FormatInt(n, 10)
	var l models.Learner
	var mark stages.StateMark
	for _, m := range []*stages.ServedModel{view.Champion, view.Canary, view.Shadow} {
		if m != nil && m.Version == v {
			l, mark = m.SnapshotMarked()
			break
		}
	}
	if l == nil && w.logged != nil {
		var ok bool
		var err error
		if l, mark, ok, err = w.logged(v); err != nil {
			return nil, err
		} else if !ok {
			l = nil
		}
	}
	if l == nil {
		data, err := w.reg.Artifact(ctx, w.model, n, registry.ArtifactSnapshot)
		if errors.Is(err, registry.ErrNotFound) || errors.Is(err, registry.ErrCorrupt) {
			return nil, err
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errArtifactUnread, err)
		}
		if l, err = models.UnmarshalLearner(data); err != nil {
			return nil, err
		}
	}
	dst := make([]float32, l.Classes())
	if err := l.Predict(dst, &w.probe); err != nil {
		return nil, fmt.Errorf("does not fit the spec's features: %w", err)
	}
	return stages.NewServedModelMarked(w.model, v, arm, l, mark), nil
}
