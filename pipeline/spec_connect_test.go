package pipeline_test

import (
	"testing"

	"github.com/driftline/driftline/pipeline"
)

// The key prefix every stage names its keys with is wrapped in a Cluster
// hash tag with redis.hash_tag (before, the flag was parsed and never
// applied, so multi-key scripts failed with CROSSSLOT on a Cluster).
func TestRedisSpecPrefix(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		tag    bool
		want   string
	}{
		{"driftline:demo:", false, "driftline:demo:"},
		{"driftline:demo:", true, "{driftline:demo:}"},
		{"", true, ""},
	} {
		r := pipeline.RedisSpec{KeyPrefix: tc.prefix, HashTag: tc.tag}
		if got := r.Prefix(); got != tc.want {
			t.Errorf("Prefix() of %q with hash_tag %v = %q; want %q", tc.prefix, tc.tag, got, tc.want)
		}
	}
}
