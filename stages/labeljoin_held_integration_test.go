//go:build integration

package stages

import (
	"testing"

	"github.com/driftline/driftline/testkit/redistest"
)

// TestIntegrationPutCutOtherwiseAfterARestart is
// TestPutCutOtherwiseAfterARestart on real redis-servers (the expiry
// left out: their clock is the machine's).
func TestIntegrationPutCutOtherwiseAfterARestart(t *testing.T) {
	spec := testSpec(t, false)
	rig := func() *joinRig {
		r := redistest.StartRedis(t)
		return newJoinRigOn(t, spec, r, r.Client(t))
	}
	checkPutCutOtherwise(t, spec, rig(), rig())
}
