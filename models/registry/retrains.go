package registry

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// QueuedRetrain is a retrain trigger that a model's governors share until
// one of them has acted on it: an error-drift alert or an operator's
// request, which any instance may see, and which only the holder of the
// model's governor lease acts on. Kept in the registry, a trigger outlives
// the instance that saw it: a holder that dies mid-retrain, or an alert
// that arrives while no instance holds the lease, leaves it for the next
// holder.
type QueuedRetrain struct {
	// Kind, Key and Reason are the trigger's (see the governor): Key is the
	// alert's dedupe key or the request's id, unique per trigger.
	Kind   string `json:"kind"`
	Key    string `json:"key"`
	Reason string `json:"reason"`
	// Since is when the trigger was first queued: a since-drift retrain
	// trains on the rows labelled after it.
	Since time.Time `json:"since"`
	// Done is when a governor finished with the trigger (zero: not yet).
	Done time.Time `json:"done,omitzero"`
}

// RetainDoneRetrains is how long a finished trigger stays in the queue, so
// that an instance that sees its alert or request late does not queue it
// again; QueuedRetrains deletes older ones.
const RetainDoneRetrains = 24 * time.Hour

// MaxRetrainKeyLen bounds a queued trigger's key.
const MaxRetrainKeyLen = 512

func (r *Registry) retrainsKey(model string) string { return r.modelKeys(model).model + ":retrains" }

func checkRetrainKey(model, key string) error {
	return checkModelString(model, "retrain trigger key", key, MaxRetrainKeyLen)
}

// QueueRetrain adds q to model's retrain queue unless a trigger with its
// key is there already, queued or done; added reports whether q is new.
// Any number of instances may queue the same trigger: the first one's
// Since is kept. q.Done is ignored. The model need not be registered.
func (r *Registry) QueueRetrain(ctx context.Context, model string, q QueuedRetrain) (added bool, err error) {
	if err := checkRetrainKey(model, q.Key); err != nil {
		return false, err
	}
	q.Done = time.Time{}
	data, err := json.Marshal(q)
	if err != nil {
		return false, fmt.Errorf("registry: queue retrain %s of %s: %w", q.Key, model, err)
	}
	added, err = r.rdb.HSetNX(ctx, r.retrainsKey(model), q.Key, data).Result()
	if err != nil {
		return false, fmt.Errorf("registry: queue retrain %s of %s: %w", q.Key, model, err)
	}
	return added, nil
}

// QueuedRetrains returns model's triggers not yet done, oldest Since first,
// and deletes the ones done more than RetainDoneRetrains ago. It fails with
// ErrCorrupt when an entry does not decode.
func (r *Registry) QueuedRetrains(ctx context.Context, model string) ([]QueuedRetrain, error) {
	if err := checkName("model", model); err != nil {
		return nil, err
	}
	key := r.retrainsKey(model)
	all, err := r.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("registry: queued retrains of %s: %w", model, err)
	}
	var undone []QueuedRetrain
	var expired []string
	for field, data := range all {
		var q QueuedRetrain
		if err := json.Unmarshal([]byte(data), &q); err != nil {
			return nil, fmt.Errorf("%w: queued retrain %s of %s: %v", ErrCorrupt, field, model, err)
		}
		switch {
		case q.Done.IsZero():
			undone = append(undone, q)
		case r.now().Sub(q.Done) > RetainDoneRetrains:
			expired = append(expired, field)
		}
	}
	if len(expired) > 0 {
		if err := r.rdb.HDel(ctx, key, expired...).Err(); err != nil {
			return nil, fmt.Errorf("registry: drop finished retrains of %s: %w", model, err)
		}
	}
	slices.SortFunc(undone, func(a, b QueuedRetrain) int {
		return cmp.Or(a.Since.Compare(b.Since), cmp.Compare(a.Key, b.Key))
	})
	return undone, nil
}

// FinishRetrain marks model's queued trigger key done now, so that no
// governor acts on it again. A key not in the queue is not an error (a
// trigger acted on without being queued, such as the schedule's). Only the
// governor lease's holder calls it, so the read and the write need not be
// atomic.
func (r *Registry) FinishRetrain(ctx context.Context, model, key string) error {
	if err := checkRetrainKey(model, key); err != nil {
		return err
	}
	k := r.retrainsKey(model)
	data, err := r.rdb.HGet(ctx, k, key).Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("registry: finish retrain %s of %s: %w", key, model, err)
	}
	var q QueuedRetrain
	if err := json.Unmarshal([]byte(data), &q); err != nil {
		return fmt.Errorf("%w: queued retrain %s of %s: %v", ErrCorrupt, key, model, err)
	}
	q.Done = r.now()
	out, err := json.Marshal(q)
	if err != nil {
		return fmt.Errorf("registry: finish retrain %s of %s: %w", key, model, err)
	}
	if err := r.rdb.HSet(ctx, k, key, out).Err(); err != nil {
		return fmt.Errorf("registry: finish retrain %s of %s: %w", key, model, err)
	}
	return nil
}
