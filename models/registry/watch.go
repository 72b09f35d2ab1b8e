package registry

import (
	"context"
	"fmt"
	"time"
)

// AliasChange is what Watch sends: a new snapshot of the model's aliases, or an error.
type AliasChange struct {
	AliasSet
	// Err is set when a poll failed; AliasSet is then zero and Watch keeps polling.
	Err error
}

// Watch polls model's alias epoch every Config.WatchInterval and sends a snapshot on the
// returned channel first once at the start, then whenever the epoch differs from the
// last one sent. Moves between two polls are coalesced: the receiver sees the newest
// state, not every step. A model that does not exist yet reads as epoch 0 with no
// aliases.
//
// Convergence bound: an alias move committed at time t is sent by t + WatchInterval +
// one poll round trip, provided the receiver has taken the previous value (Watch blocks
// on the send rather than drop a change). Every instance watching the model therefore
// serves the new aliases within that bound.
//
// The channel is unbuffered and is closed after ctx is done. An invalid model name gets
// one AliasChange with an ErrInvalid error, then the channel closes.
func (r *Registry) Watch(ctx context.Context, model string) <-chan AliasChange {
	out := make(chan AliasChange)
	go func() {
		defer close(out)
		if err := checkName("model", model); err != nil {
			select {
			case out <- AliasChange{Err: err}:
			case <-ctx.Done():
			}
			return
		}
		t := time.NewTicker(r.cfg.WatchInterval)
		defer t.Stop()
		last := int64(-1)
		for {
			set, _, err := r.readAliases(ctx, model)
			if ctx.Err() != nil {
				return
			}
			if err != nil || set.Epoch != last {
				ch := AliasChange{AliasSet: set}
				if err != nil {
					ch = AliasChange{Err: fmt.Errorf("registry: watch %s: %w", model, err)}
				} else {
					last = set.Epoch
				}
				select {
				case out <- ch:
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
