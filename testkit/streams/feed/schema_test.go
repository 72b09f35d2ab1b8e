package feed

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/streams"
)

// Rows written in an example spec's schema pass that spec's own decode,
// validate, dedupe, anonymize and featurize stages, and their labels carry
// the spec's id and label field names.
func TestSchemaEncoderWritesWhatTheSpecReads(t *testing.T) {
	for _, file := range []string{"payments-fraud.yaml", "minimal.yaml"} {
		t.Run(file, func(t *testing.T) {
			spec, err := pipeline.LoadSpec("../../../deploy/examples/" + file)
			if err != nil {
				t.Fatal(err)
			}
			an := spec.Stages.Anonymize
			for _, env := range []string{an.HMACKeyEnv, an.EncryptionKeyEnv} {
				if env != "" {
					t.Setenv(env, strings.Repeat("ab", 32))
				}
			}
			keys, err := stages.LoadKeys(&spec.Stages.Anonymize)
			if err != nil {
				t.Fatal(err)
			}
			chain, err := stages.PreparationChain(spec, redistest.StartMiniredis(t).Client(t), keys)
			if err != nil {
				t.Fatal(err)
			}
			for _, concept := range []string{streams.ConceptSEA, streams.ConceptAgrawal} {
				enc, err := NewSchemaEncoder(spec, concept)
				if err != nil {
					t.Fatal(err)
				}
				gen, err := streams.NewGenerator(streams.Config{Concept: concept, Seed: 7, Start: time.Now()})
				if err != nil {
					t.Fatal(err)
				}
				msgs := make([]pipeline.Message, 500)
				var e streams.Event
				for i := range msgs {
					gen.Next(&e)
					msgs[i] = pipeline.Message{Topic: spec.Topics.Input, Offset: int64(i), Key: enc.Key(&e), Value: enc.AppendEvent(nil, &e), Timestamp: time.Now()}
					if i == 0 {
						var label map[string]any
						if err := json.Unmarshal(enc.AppendLabel(nil, &e), &label); err != nil || label[spec.Schema.IDField] != e.ID || label[spec.Labels.Field] != float64(e.Label) {
							t.Fatalf("label record %s, %v", enc.AppendLabel(nil, &e), err)
						}
					}
				}
				b := &pipeline.Batch{}
				b.Reset(msgs)
				for _, st := range chain {
					if err := st.Process(context.Background(), b); err != nil {
						t.Fatal(err)
					}
				}
				for i := range b.Len() {
					if !b.OK(i) {
						t.Fatalf("%s row %s rejected: %+v", concept, msgs[i].Value, b.Rejections)
					}
				}
				if b.Features.Len() != len(msgs) {
					t.Fatalf("%d feature rows for %d events", b.Features.Len(), len(msgs))
				}
			}
		})
	}
}
