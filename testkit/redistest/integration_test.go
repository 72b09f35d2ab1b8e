//go:build integration

package redistest

import (
	"os"
	"testing"
)

func TestRealRedis(t *testing.T) {
	r := StartRedis(t)
	if r.Mini != nil {
		t.Fatal("StartRedis returned miniredis")
	}
	if _, err := os.Stat(r.LogPath); err != nil {
		t.Fatalf("redis log: %v", err)
	}
	setGetExpire(t, r)
}
