//go:build integration

package stages

import (
	"testing"

	"github.com/driftline/driftline/testkit/redistest"
)

// TestIntegrationAggregatesWriteFormatAndChunks is
// TestAggregatesWriteFormatAndChunks on a real redis-server: its Lua
// (cjson, the script's PEXPIREs after its HSETs) writes the same strings
// and TTLs as miniredis's.
func TestIntegrationAggregatesWriteFormatAndChunks(t *testing.T) {
	checkAggregatesWrite(t, redistest.StartRedis(t).Client(t))
}
