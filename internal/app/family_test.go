package app

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/stages"
	"github.com/driftline/driftline/testkit/redistest"
)

// TestRetrainKeepsTheFamily: with model.kind set to a tree, a forest or an
// MLP, the served champion is of that family and the governor's retrain
// job registers a candidate of the same family.
func TestRetrainKeepsTheFamily(t *testing.T) {
	for _, tc := range []struct {
		kind   string
		params string
		want   string
	}{
		{"hat", "{grace_period: 50}", "*models.HoeffdingAdaptiveTreeClassifier"},
		{"arf", "{n_models: 3}", "*models.ARFClassifier"},
		{"mlp", "{hidden: \"8\"}", "*models.MLP"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			ctx := context.Background()
			text := strings.Replace(string(DemoSpec), "  kind: logistic\n  optimizer: adagrad\n", fmt.Sprintf("  kind: %s\n  params: %s\n", tc.kind, tc.params), 1)
			spec, err := ParseSpec("family.yaml", []byte(text))
			if err != nil {
				t.Fatal(err)
			}
			spec.Kafka.Brokers = []string{"127.0.0.1:1"}
			t.Setenv(spec.Stages.Anonymize.HMACKeyEnv, strings.Repeat("ab", 32))
			t.Setenv(spec.Stages.Anonymize.EncryptionKeyEnv, strings.Repeat("cd", 32))
			rdb := redistest.StartMiniredis(t).Client(t)
			a, err := Open(ctx, spec, Options{Redis: rdb, Log: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if got := fmt.Sprintf("%T", a.arms.Champion().Snapshot()); got != tc.want {
				t.Fatalf("champion is a %s, want %s", got, tc.want)
			}
			fz, err := stages.NewFeaturize(spec, rdb)
			if err != nil {
				t.Fatal(err)
			}
			job, err := a.newRetrainJob(fz)
			if err != nil {
				t.Fatal(err)
			}
			// The label join's OnLearned feeds the window the job trains on.
			rng := rand.New(rand.NewPCG(1, 2))
			rows := models.Rows{N: 4000, NumDense: fz.NumDense(), NumHashed: fz.NumHashed(),
				Dense: make([]float32, 4000*fz.NumDense()), Hashed: make([]int32, 4000*fz.NumHashed())}
			y := make([]float32, rows.N)
			for i := range rows.N {
				for j := range fz.NumDense() {
					rows.Dense[i*fz.NumDense()+j] = rng.Float32()
				}
				for j := range fz.NumHashed() {
					rows.Hashed[i*fz.NumHashed()+j] = -1
				}
				if rows.Dense[i*fz.NumDense()] > 0.5 {
					y[i] = 1
				}
			}
			a.join.OnLearned(&rows, y)
			v, err := job.RunOnce(ctx, "test", "family test", time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			snap, err := a.models.Artifact(ctx, spec.Model.Name, v.Number, registry.ArtifactSnapshot)
			if err != nil {
				t.Fatal(err)
			}
			l, err := models.UnmarshalLearner(snap)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("%T", l); got != tc.want {
				t.Fatalf("the retrained candidate is a %s, want %s", got, tc.want)
			}
		})
	}
}
