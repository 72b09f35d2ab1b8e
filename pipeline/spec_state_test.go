package pipeline_test

import (
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/pipeline"
)

// stateSpec is rolloutSpec with a learner-state topic.
var stateSpec = strings.Replace(rolloutSpec, "  audit: audit\n", "  audit: audit\n  model_state: model-state\n", 1)

func TestLearnerStateDefaults(t *testing.T) {
	spec, err := pipeline.ParseSpec(specFile, []byte(stateSpec))
	if err != nil {
		t.Fatal(err)
	}
	l := spec.LearnerState
	if spec.Topics.ModelState != "model-state" || l.PublishLabels != 10_000 || l.PublishInterval.D() != time.Second ||
		l.LeaseTTL.D() != 10*time.Second || l.MaxRecordBytes != 64<<20 {
		t.Errorf("model_state %q, learner_state %+v; want the defaults K=10000, T=1s, lease 10s, 64 MiB", spec.Topics.ModelState, l)
	}
	set := stateSpec + "learner_state: {publish_labels: 500, publish_interval: 250ms, lease_ttl: 4s, max_record_bytes: 2097152}\n"
	if spec, err = pipeline.ParseSpec(specFile, []byte(set)); err != nil {
		t.Fatal(err)
	}
	if l := spec.LearnerState; l.PublishLabels != 500 || l.PublishInterval.D() != 250*time.Millisecond || l.LeaseTTL.D() != 4*time.Second || l.MaxRecordBytes != 2<<20 {
		t.Errorf("learner_state %+v, want what the spec sets", l)
	}
}

func TestLearnerStateErrors(t *testing.T) {
	for _, tc := range []struct{ block, field, msg string }{
		{"{publish_labels: -1}", "learner_state.publish_labels", "must be at least 1, got -1"},
		{"{publish_interval: 5ms}", "learner_state.publish_interval", "must be between 10ms and 1m, got 5ms"},
		{"{lease_ttl: 1s}", "learner_state.lease_ttl", "must be between 3s and 5m, got 1s"},
		{"{max_record_bytes: 1000}", "learner_state.max_record_bytes", "must be at least 1 MiB (1048576), got 1000"},
	} {
		t.Run(tc.field, func(t *testing.T) {
			checkSpecError(t, stateSpec+"learner_state: "+tc.block+"\n", tc.field, "learner_state:", tc.msg)
		})
	}
	for _, other := range []struct{ path, topic string }{
		{"topics.input", "events"}, {"topics.labels", "labels"}, {"topics.audit", "audit"}, {"rollout.shadow_topic", "preds-shadow"},
	} {
		t.Run("same as "+other.path, func(t *testing.T) {
			text := strings.Replace(stateSpec, "  model_state: model-state\n", "  model_state: "+other.topic+"\n", 1)
			checkSpecError(t, text, "topics.model_state", "  model_state: ", "must differ from every other topic, but "+other.path+` is also "`+other.topic+`"`)
		})
	}
	noLabels := strings.Replace(baseSpec, "  dlq: events.dlq\n", "  dlq: events.dlq\n  model_state: model-state\n", 1)
	checkSpecError(t, noLabels, "topics.model_state", "  model_state: ", "topics.labels is not set")
}
