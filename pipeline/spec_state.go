package pipeline

import "time"

// LearnerStateSpec says how the learner state of each served model version
// is published to topics.model_state (a compacted topic keyed by
// "model@version"), which every instance follows and restores from:
//
//	learner_state:
//	  publish_labels: 10000   # publish at the latest after this many label records
//	  publish_interval: 1s    # ... or this long after the last publish, whichever comes first
//	  lease_ttl: 10s          # the writer's lease: how long a dead writer holds it
//	  max_record_bytes: 67108864
//
// It applies only when topics.model_state is set. One instance at a time,
// the holder of the model's learner lease, consumes the labels topic (every
// partition), learns, and publishes; the others serve the newest published
// state. A field that is absent or 0 takes its default.
type LearnerStateSpec struct {
	// PublishLabels is K: the writer publishes once it has consumed this
	// many label records since its last publish (default
	// DefaultPublishLabels, at least 1).
	PublishLabels int `yaml:"publish_labels"`
	// PublishInterval is T: the writer publishes this long after its last
	// publish when it has consumed any label since (default
	// DefaultPublishInterval, between 10ms and 1m).
	PublishInterval Duration `yaml:"publish_interval"`
	// LeaseTTL is the learner lease's time to live, renewed every third of
	// it: another instance takes over at most LeaseTTL (plus, with
	// kafka.exactly_once, the session timeout of the labels group) after
	// the writer dies (default DefaultLeaseTTL, between 3s and 5m: a third of
	// it bounds a publish's delivery, and Kafka producers take no less than 1s).
	LeaseTTL Duration `yaml:"lease_ttl"`
	// MaxRecordBytes bounds one state record; the topic is created with
	// max.message.bytes set to it (default DefaultMaxRecordBytes, at least
	// 1 MiB). A learner's snapshot that does not fit fails the publish.
	MaxRecordBytes int `yaml:"max_record_bytes"`
}

// Defaults of LearnerStateSpec.
const (
	DefaultPublishLabels   = 10_000
	DefaultPublishInterval = time.Second
	DefaultLeaseTTL        = 10 * time.Second
	DefaultMaxRecordBytes  = 64 << 20
)

func (l *LearnerStateSpec) applyDefaults() {
	if l.PublishLabels == 0 {
		l.PublishLabels = DefaultPublishLabels
	}
	if l.PublishInterval == 0 {
		l.PublishInterval = Duration(DefaultPublishInterval)
	}
	if l.LeaseTTL == 0 {
		l.LeaseTTL = Duration(DefaultLeaseTTL)
	}
	if l.MaxRecordBytes == 0 {
		l.MaxRecordBytes = DefaultMaxRecordBytes
	}
}

// validateLearnerState checks topics.model_state and the learner_state
// block.
func (s *Spec) validateLearnerState(add func(path, format string, args ...any)) {
	l := &s.LearnerState
	if l.PublishLabels < 1 {
		add("learner_state.publish_labels", "must be at least 1, got %d", l.PublishLabels)
	}
	if d := l.PublishInterval.D(); d < 10*time.Millisecond || d > time.Minute {
		add("learner_state.publish_interval", "must be between 10ms and 1m, got %s", d)
	}
	if d := l.LeaseTTL.D(); d < 3*time.Second || d > 5*time.Minute {
		add("learner_state.lease_ttl", "must be between 3s and 5m, got %s", d)
	}
	if l.MaxRecordBytes < 1<<20 {
		add("learner_state.max_record_bytes", "must be at least 1 MiB (1048576), got %d", l.MaxRecordBytes)
	}
	topic := s.Topics.ModelState
	if topic == "" {
		return
	}
	if s.Topics.Labels == "" {
		add("topics.model_state", "holds what the model learns from labels, but topics.labels is not set")
	}
	if s.Model.ONNX != nil {
		add("topics.model_state", "does not apply to model.onnx (a bring-your-own model does not learn)")
	}
	others := append(s.coreTopics(), namedTopic{"topics.audit", s.Topics.Audit})
	if s.Rollout != nil {
		others = append(others, namedTopic{"rollout.shadow_topic", s.Rollout.ShadowTopic})
	}
	for _, o := range others {
		if o.topic == topic {
			add("topics.model_state", "must differ from every other topic, but %s is also %q", o.path, topic)
		}
	}
}
