//go:build integration

package registry_test

import (
	"testing"

	"github.com/driftline/driftline/testkit/redistest"
)

// TestRegistryRedis runs the whole suite against a real redis-server.
func TestRegistryRedis(t *testing.T) { runSuite(t, redistest.StartRedis) }
