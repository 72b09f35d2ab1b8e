package main

import (
	"log/slog"
	"testing"
	"time"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
)

// TestNewGovernorChoosesRetrainSource: the data plane's governor retrains
// on the window by default and on a kafkaRetrainRows of the spec with
// source kafka.
func TestNewGovernorChoosesRetrainSource(t *testing.T) {
	broker, rds := kafkatest.StartKfake(t), redistest.StartMiniredis(t)
	for _, source := range []string{"", pipeline.RetrainSourceWindow, pipeline.RetrainSourceKafka} {
		t.Run("source "+source, func(t *testing.T) {
			spec, err := pipeline.ParseSpec("demo.yaml", []byte(replaySpecText(t, broker.Addr, rds.Addr)))
			if err != nil {
				t.Fatal(err)
			}
			spec.Rollout.Retrain.Source, spec.Rollout.Retrain.Lookback = source, pipeline.Duration(time.Hour)
			dp, err := newDataPlane(spec, rds.Client(t), slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer dp.kc.Close()
			switch rows := dp.governor.retrain.rows.(type) {
			case *retrainWindow:
				if source == pipeline.RetrainSourceKafka {
					t.Errorf("source %q: the governor retrains on the window", source)
				}
			case *kafkaRetrainRows:
				if source != pipeline.RetrainSourceKafka || rows.spec != spec || rows.lookback != time.Hour ||
					rows.window != spec.Rollout.RetrainOrDefault().Window || rows.numDense != 13 || rows.numHashed != 3 {
					t.Errorf("source %q: kafka rows %+v", source, rows)
				}
			default:
				t.Errorf("source %q: rows %T", source, rows)
			}
		})
	}
}
