//go:build integration

package stages

import (
	"testing"

	"github.com/driftline/driftline/testkit/redistest"
)

// serverRig is a join rig on a redis-server of its own.
func serverRig(t *testing.T) *joinRig {
	t.Helper()
	r := redistest.StartRedis(t)
	return newJoinRigOn(t, testSpec(t, false), r, r.Client(t))
}

// The tests of labeljoin_early_retry_test.go on real redis-servers (the
// expiry left out: their clock is the machine's).

func TestIntegrationLabelBatchRetriedAfterAPutTookItsLabel(t *testing.T) {
	checkRetriedAfterAPutTookItsLabel(t, serverRig(t), serverRig(t))
}

func TestIntegrationLabelDeliveredAgainAfterAPutTookItsLabel(t *testing.T) {
	checkDeliveredAgainAfterAPutTookItsLabel(t, serverRig(t))
}

func TestIntegrationLoggedLabelDeliveredAgainAfterItsStreamJoin(t *testing.T) {
	checkLoggedDeliveredAgainAfterItsStreamJoin(t, serverRig(t))
}

func TestIntegrationLoggedLabelDeliveredAgainBeforeItsStreamJoin(t *testing.T) {
	checkLoggedDeliveredAgainBeforeItsStreamJoin(t, serverRig(t))
}
