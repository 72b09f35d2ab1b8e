package governance

import (
	"context"
	"time"

	"github.com/driftline/driftline/models/registry"
)

// RunOnce runs the job once outside the governor's loop, as an operator's
// retrain request (key and reason, recorded as the governor records a
// request's) would, but on the source's rows since since (zero: every row
// it gives): it trains, registers and shadows one candidate and returns
// its version. It fails with ErrRetrainNoData when the source has fewer
// than MinRows rows.
func (j *RetrainJob) RunOnce(ctx context.Context, key, reason string, since time.Time) (registry.Version, error) {
	return j.run(ctx, retrainTrigger{Kind: "request", Key: key, Reason: reason}, since)
}
