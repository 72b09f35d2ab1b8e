package registry

import (
	"context"
	"errors"
)

// SettleAfterRollback keeps the bookkeeping aliases of model true after a
// rollback moved its champion: "previous" points at the champion before
// the current one, as the audit trail records it (PreviousChampion), or is
// removed when there is none, and "baking" is removed unless it names the
// champion. So a rollback never leaves champion=2,previous=2. Each move
// is a compare-and-set with its own audit event (who, why, details
// action=rollback); a concurrent move of the same alias wins, and is not
// an error.
func (r *Registry) SettleAfterRollback(ctx context.Context, model, who, why string) error {
	set, err := r.Aliases(ctx, model)
	if err != nil {
		return err
	}
	champ := set.Versions[AliasChampion]
	prev, err := r.PreviousChampion(ctx, model, champ)
	if err != nil {
		return err
	}
	details := map[string]string{"action": "rollback"}
	move := func(alias string, to int64) error {
		cur := set.Versions[alias]
		if cur == to {
			return nil
		}
		_, err := r.MoveAlias(ctx, AliasMove{Model: model, Alias: alias, Version: to, Expect: cur, Who: who, Why: why, Details: details})
		if errors.Is(err, ErrConflict) {
			return nil
		}
		return err
	}
	if err := move(AliasPrevious, prev); err != nil {
		return err
	}
	if b := set.Versions[AliasBaking]; b != 0 && b != champ {
		return move(AliasBaking, 0)
	}
	return nil
}
