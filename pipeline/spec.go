package pipeline

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"go.yaml.in/yaml/v4"
)

// Spec is a pipeline described in one YAML file: topics, the event schema,
// the stages' settings, the model and the addresses of Kafka, Redis and the
// admin server. Load it with LoadSpec or ParseSpec; both validate it.
type Spec struct {
	Name   string      `yaml:"name"`
	Topics TopicsSpec  `yaml:"topics"`
	Kafka  KafkaSpec   `yaml:"kafka"`
	Redis  RedisSpec   `yaml:"redis"`
	Admin  AdminSpec   `yaml:"admin"`
	Batch  BatchSpec   `yaml:"batch"`
	Schema SchemaSpec  `yaml:"schema"`
	Stages StagesSpec  `yaml:"stages"`
	Model  ModelSpec   `yaml:"model"`
	Output OutputSpec  `yaml:"output"`
	Labels LabelsSpec  `yaml:"labels"`
	Drift  DriftSpec   `yaml:"drift"`
	source *specSource `yaml:"-"`

	// LearnerState says how often the learner state is published to
	// topics.model_state (see LearnerStateSpec).
	LearnerState LearnerStateSpec `yaml:"learner_state"`

	// Rollout, when set, serves the registry's aliases of model.name as
	// rollout arms and hot-swaps them (see RolloutSpec).
	Rollout *RolloutSpec `yaml:"rollout"`

	// Lake, when set, makes run write the live lake (see LakeSpec).
	Lake *LakeSpec `yaml:"lake"`
}

// TopicsSpec names the Kafka topics the pipeline reads and writes.
type TopicsSpec struct {
	Input       string `yaml:"input"`
	Predictions string `yaml:"predictions"`
	DLQ         string `yaml:"dlq"`
	Labels      string `yaml:"labels"`
	Alerts      string `yaml:"alerts"`
	// Audit, when set, receives every audit event (registrations, rollout
	// decisions, alias moves, overrides) as JSON, besides the Redis audit
	// stream. It must differ from every other topic of the spec.
	Audit string `yaml:"audit"`
	// ModelState, when set, is the compacted topic of learner states: one
	// writer per model publishes what each served version learned (keyed
	// "model@version", with the label offsets it covers); every instance
	// serves the newest state and restores from it at start, before it is
	// ready. It is created (compacted) when missing. See LearnerStateSpec.
	ModelState string `yaml:"model_state"`
}

// KafkaSpec says how to reach Kafka and how to consume.
type KafkaSpec struct {
	Brokers []string `yaml:"brokers"`
	Group   string   `yaml:"group"`
	// SessionTimeout bounds how long a dead member holds its partitions.
	SessionTimeout Duration `yaml:"session_timeout"`
	// ClientID is sent to the brokers; it defaults to "driftline".
	ClientID string `yaml:"client_id"`
	// ExactlyOnce switches the data plane from at-least-once to
	// exactly-once: each round of micro-batches writes its predictions,
	// DLQ records and shadow outputs and commits its input offsets in one
	// Kafka transaction, and the input is read with read-committed
	// isolation. Consumers of the output topics must read with
	// read-committed isolation to see each output once. Needs Kafka 2.5+.
	ExactlyOnce bool `yaml:"exactly_once"`
	// TransactionalID names this instance's transactional producer (with
	// exactly_once only). Every running instance needs its own: two
	// processes with one id fence each other. Unset, it is
	// "<client_id>-<group>-<hostname>", which is unique per host (a pod
	// name) and stable across restarts there, so a restarted process
	// aborts its crashed predecessor's open transaction at once. Set it
	// when two instances share a hostname.
	TransactionalID string `yaml:"transactional_id"`
	// TLS, when set, encrypts every connection to the brokers.
	TLS *TLSSpec `yaml:"tls"`
	// SASL, when set, authenticates every connection to the brokers.
	SASL *SASLSpec `yaml:"sasl"`
	// Compression is the codec of every produced batch: snappy (the
	// default), lz4, zstd, gzip or none. kafka-python without extra
	// packages reads gzip and none only.
	Compression string `yaml:"compression"`
}

// TLSSpec is a client's TLS material, as PEM files. CAFile replaces the
// system roots when set; CertFile and KeyFile go together (mutual TLS).
// ServerName overrides the name checked against the server's certificate.
// InsecureSkipVerify turns certificate checks off (tests only); it is off
// unless set. An empty block (tls: {}) is TLS with the system roots.
type TLSSpec struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// SASLSpec authenticates to Kafka. The password is never in the spec: it
// comes from the environment variable PasswordEnv or the file
// PasswordFile. OAUTHBEARER reads its token from TokenFile at every
// authentication.
type SASLSpec struct {
	// Mechanism is PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER.
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	// Password is refused: a secret never sits in the spec in plain text.
	// It exists so that validation can say where to put it instead.
	Password     string `yaml:"password"`
	PasswordEnv  string `yaml:"password_env"`
	PasswordFile string `yaml:"password_file"`
	TokenFile    string `yaml:"token_file"`
}

// PasswordRef names where the SASL password is.
func (s *SASLSpec) PasswordRef() SecretRef {
	return SecretRef{Env: s.PasswordEnv, File: s.PasswordFile}
}

// RedisSpec says how to reach Redis: one server (mode standalone, the
// default, at Addr), a Sentinel-managed primary (mode sentinel: Addrs are
// the sentinels, MasterName the primary's name) or a Cluster (mode cluster:
// Addrs are seed nodes). The password is never in the spec: it comes from
// PasswordEnv or PasswordFile (with Username for an ACL user).
type RedisSpec struct {
	Mode       string   `yaml:"mode"`
	Addr       string   `yaml:"addr"`
	Addrs      []string `yaml:"addrs"`
	MasterName string   `yaml:"master_name"`
	Username   string   `yaml:"username"`
	// Password is refused: a secret never sits in the spec in plain text.
	// It exists so that validation can say where to put it instead.
	Password     string `yaml:"password"`
	PasswordEnv  string `yaml:"password_env"`
	PasswordFile string `yaml:"password_file"`
	DB           int    `yaml:"db"`
	// TLS, when set, encrypts the connections.
	TLS *TLSSpec `yaml:"tls"`
	// KeyPrefix namespaces every key the pipeline writes; default "driftline:<name>:".
	KeyPrefix string `yaml:"key_prefix"`
	// HashTag wraps the key prefix in a Cluster hash tag ("{prefix}"), so
	// that every key of the pipeline maps to one slot and multi-key scripts
	// work on a Cluster.
	HashTag bool `yaml:"hash_tag"`
	// Timeout bounds each command's reads and writes (default 2s): a Redis
	// that hangs fails the call after it, and the loop pauses and retries.
	Timeout Duration `yaml:"timeout"`
}

// PasswordRef names where the Redis password is.
func (r *RedisSpec) PasswordRef() SecretRef {
	return SecretRef{Env: r.PasswordEnv, File: r.PasswordFile}
}

// Prefix is the prefix every key of the pipeline starts with: key_prefix,
// wrapped in a Cluster hash tag ("{prefix}") with hash_tag, so that all of
// the pipeline's keys map to one slot and multi-key scripts run on a
// Cluster. One slot lives on one node: the hash tag trades the Cluster's
// spread of one pipeline's keys for those scripts. Every key the pipeline
// writes is named with it, never with KeyPrefix alone.
func (r *RedisSpec) Prefix() string {
	if !r.HashTag || r.KeyPrefix == "" {
		return r.KeyPrefix
	}
	return "{" + r.KeyPrefix + "}"
}

// AdminSpec is the admin HTTP server: /metrics, /healthz, /readyz and the
// model admin API.
type AdminSpec struct {
	// Addr is host:port; without a host (":9464") it listens on loopback
	// only. Name the interface to serve others (a pod IP, "0.0.0.0").
	Addr string `yaml:"addr"`
	// PublicStatus lets the status page and the admin API's read calls
	// answer without a token (as the viewer "anonymous"); writes always
	// need one.
	PublicStatus bool `yaml:"public_status"`
	// MetricsAuth makes /metrics need a viewer token of the admin API
	// (Authorization: Bearer), as /api/v1 does; off by default, for a
	// scraper on a trusted network.
	MetricsAuth bool `yaml:"metrics_auth"`
}

// BatchSpec bounds the micro-batches of each partition loop.
type BatchSpec struct {
	// Size is the most records in one micro-batch.
	Size int `yaml:"size"`
	// Linger is how long a partition loop waits to fill a batch.
	Linger Duration `yaml:"linger"`
	// MaxInFlight is the most fetched batches queued per partition; with
	// Size it bounds memory under overload.
	MaxInFlight int `yaml:"max_in_flight"`
}

// SchemaSpec describes the JSON input events.
type SchemaSpec struct {
	IDField   string      `yaml:"id_field"`
	TimeField string      `yaml:"time_field"`
	Fields    []FieldSpec `yaml:"fields"`
	// MaxStringBytes caps any string value; longer values reject the row.
	MaxStringBytes int `yaml:"max_string_bytes"`
}

// FieldType is the type of an input field.
type FieldType string

// The field types a schema may use.
const (
	TypeString    FieldType = "string"
	TypeFloat     FieldType = "float"
	TypeInt       FieldType = "int"
	TypeBool      FieldType = "bool"
	TypeTimestamp FieldType = "timestamp"
)

// PIIClass says what kind of personal data a field holds; "" or "none" means
// it holds none.
type PIIClass string

// FieldSpec describes one input field.
type FieldSpec struct {
	Name     string    `yaml:"name"`
	Type     FieldType `yaml:"type"`
	Required bool      `yaml:"required"`
	Min      *float64  `yaml:"min"`
	Max      *float64  `yaml:"max"`
	Enum     []string  `yaml:"enum"`
	PII      PIIClass  `yaml:"pii"`
}

// StagesSpec holds the settings of the stages after decoding.
type StagesSpec struct {
	Dedupe    DedupeSpec    `yaml:"dedupe"`
	Anonymize AnonymizeSpec `yaml:"anonymize"`
	Featurize FeaturizeSpec `yaml:"featurize"`
	// Text holds the free-text stages: PII recognizers, hashed tokens and
	// a transformer model (see TextSpec).
	Text TextSpec `yaml:"text"`
}

// DedupeSpec configures de-duplication by event id.
type DedupeSpec struct {
	Enabled *bool `yaml:"enabled"`
	// TTL is how long an event id is remembered: at least TTL and at most twice it (buckets of TTL in Redis).
	TTL Duration `yaml:"ttl"`
	// RecentIDs is how many event ids each partition loop remembers in
	// process, in front of Redis (default DefaultDedupeRecentIDs; 0 turns
	// the filter off). An id this process wrote to Redis a moment ago is
	// then a duplicate without a round trip; any other id still asks
	// Redis. Each id costs about 110 bytes plus its Redis key (about 1.4 MB
	// per partition loop at the default with UUID ids).
	RecentIDs *int `yaml:"recent_ids"`
}

// DefaultDedupeRecentIDs is DedupeSpec.RecentIDs' default.
const DefaultDedupeRecentIDs = 8192

// On reports whether de-duplication runs (it does unless disabled).
func (d DedupeSpec) On() bool { return d.Enabled == nil || *d.Enabled }

// AnonymizeOp is an anonymization operator.
type AnonymizeOp string

// The anonymization operators.
const (
	OpPseudonymize AnonymizeOp = "pseudonymize"
	OpMask         AnonymizeOp = "mask"
	OpRedact       AnonymizeOp = "redact"
	OpDrop         AnonymizeOp = "drop"
	OpEncrypt      AnonymizeOp = "encrypt"
)

// AnonymizeSpec maps PII fields to operators and names the keys.
type AnonymizeSpec struct {
	// Fields maps a field name to its operator.
	Fields []AnonymizeField `yaml:"fields"`
	// HMACKeyEnv / HMACKeyFile name where the pseudonymization key is.
	HMACKeyEnv  string `yaml:"hmac_key_env"`
	HMACKeyFile string `yaml:"hmac_key_file"`
	// EncryptionKeyEnv / EncryptionKeyFile hold a 32-byte AES-256 key, hex
	// or base64 encoded; EncryptionKeyID is written in the
	// driftline.key_id header of every record that carries ciphertext.
	EncryptionKeyEnv  string `yaml:"encryption_key_env"`
	EncryptionKeyFile string `yaml:"encryption_key_file"`
	EncryptionKeyID   string `yaml:"encryption_key_id"`
	// DLQPayload says what a DLQ record carries: "encrypt" (the original
	// input, AES-256-GCM encrypted with the encryption key, the default when
	// the schema has PII fields) or "raw" (the original bytes as they came,
	// the default otherwise). Malformed input can't be anonymized field by
	// field, so plaintext PII reaches the DLQ only if you choose "raw".
	DLQPayload string `yaml:"dlq_payload"`
}

// HasPII reports whether any schema field carries a PII class, or a
// free-text field is scanned for PII (stages.text.pii).
func (s *Spec) HasPII() bool {
	if s.HasTextPII() {
		return true
	}
	for _, f := range s.Schema.Fields {
		if f.PII != "" && f.PII != "none" {
			return true
		}
	}
	return false
}

// AnonymizeField is one field's operator.
type AnonymizeField struct {
	Field string      `yaml:"field"`
	Op    AnonymizeOp `yaml:"op"`
	// KeepLast is how many trailing characters "mask" keeps (default 4).
	KeepLast int `yaml:"keep_last"`
}

// FeaturizeSpec turns fields into a dense block and hashed indices.
type FeaturizeSpec struct {
	Numeric     []string    `yaml:"numeric"`
	Categorical []string    `yaml:"categorical"`
	HashBits    int         `yaml:"hash_bits"`
	Entity      *EntitySpec `yaml:"entity"`
}

// EntitySpec turns on Feast-style per-entity aggregates kept in Redis: the
// entity's event count, the running mean of MeanOf, and the seconds since
// its previous event. They are appended to the dense block.
type EntitySpec struct {
	Field  string   `yaml:"field"`
	MeanOf string   `yaml:"mean_of"`
	TTL    Duration `yaml:"ttl"`
	// LocalCache is how many entities each partition loop keeps in memory
	// (default DefaultEntityLocalCache; 0 turns it off). A cached entity's
	// aggregates are not read back from Redis, which assumes one writer per
	// entity: the input topic keyed by the entity field, as `driftline
	// produce` does. With other keys, set 0. Even at 0, an entity whose
	// write-behind (the batch's deferred aggregate write) has not yet
	// reached Redis is read from memory, because Redis does not hold its
	// latest aggregates yet.
	LocalCache *int `yaml:"local_cache"`
}

// DefaultEntityLocalCache is EntitySpec.LocalCache's default.
const DefaultEntityLocalCache = 100_000

// ModelSpec names the online model that scores events.
type ModelSpec struct {
	Name    string `yaml:"name"`
	Version string `yaml:"version"`
	// Kind is the learner family (default logistic): linear, logistic and
	// softmax; hoeffding_tree, hat and arf; hoeffding_tree_regressor and
	// arf_regressor; mlp and mlp_regressor. The models factory owns the
	// list and each kind's parameters (`driftline eval --help` prints them).
	Kind string `yaml:"kind"`
	// Params are the kind's parameters, name: value (e.g. grace_period:
	// 200 for a Hoeffding tree, hidden: "64,32" for an MLP).
	Params map[string]string `yaml:"params"`
	// Classes is K, the number of classes, for a classifier (default 2).
	Classes int `yaml:"classes"`
	// Optimizer, LearnRate, L1 and L2 are the linear learners' params
	// optimizer (sgd, the default; adagrad; ftrl), learning_rate, l1 and
	// l2, as fields of their own.
	Optimizer string  `yaml:"optimizer"`
	LearnRate float64 `yaml:"learn_rate"`
	L1        float64 `yaml:"l1"`
	L2        float64 `yaml:"l2"`
	// Engine runs an MLP's training step: go (the default) or onnxruntime;
	// with onnxruntime, ExecutionProvider (cpu, the default, or cuda) and
	// DeviceID choose where. Other kinds run in Go.
	Engine            string `yaml:"engine"`
	ExecutionProvider string `yaml:"execution_provider"`
	DeviceID          int    `yaml:"device_id"`
	// Threshold is a binary model's decision threshold, in (0, 1): a
	// prediction's class is 1 when its score is above it and 0 otherwise,
	// so a score exactly at the threshold — the 0.5 of a logistic model
	// that has learned nothing — is class 0 (models.PredictedClass).
	// Unset, it is models.Threshold (0.5). It applies to binary
	// classifiers (one score per row: logistic, the trees and forests, mlp,
	// and bring-your-own ONNX models), not to softmax or regression.
	Threshold *float64 `yaml:"threshold"`
	// ONNX, when set, makes the model one that the user brings: an ONNX
	// file that scores events but does not learn. Kind, classes and the
	// optimizer settings do not apply to it.
	ONNX *ONNXModelSpec `yaml:"onnx"`
}

// Execution providers of model.onnx.execution_provider.
const (
	ProviderCPU  = "cpu"
	ProviderCUDA = "cuda"
)

// ONNXModelSpec names a user's ONNX model and maps the schema's numeric
// fields to its inputs:
//
//	onnx:
//	  path: models/churn.onnx
//	  inputs: [{input: numeric, features: [f0, f1, f2]}]
//	  output: prob
//	  execution_provider: cpu   # or cuda, with device_id
//	  latency_budget: 5ms
type ONNXModelSpec struct {
	// Path is the ONNX file, relative to the working directory.
	Path string `yaml:"path"`
	// Inputs maps every input of the model, a float32 [N, F] tensor, to F
	// numeric fields (float, int or bool) of the schema, in column order.
	Inputs []ONNXInputSpec `yaml:"inputs"`
	// Output names the float32 [N] or [N, 1] output that holds the score;
	// it may be empty when the model has one output.
	Output string `yaml:"output"`
	// ExecutionProvider is cpu (the default) or cuda. cuda fails at
	// startup when it cannot run; it never falls back to the CPU.
	ExecutionProvider string `yaml:"execution_provider"`
	// DeviceID is the CUDA device ordinal (cuda only).
	DeviceID int `yaml:"device_id"`
	// LatencyBudget, when set, splits each micro-batch into sub-batches
	// sized adaptively so that one sub-batch scores within the budget;
	// 0 scores each micro-batch in one call.
	LatencyBudget Duration `yaml:"latency_budget"`
}

// ONNXInputSpec feeds one model input from named fields.
type ONNXInputSpec struct {
	Input    string   `yaml:"input"`
	Features []string `yaml:"features"`
}

// OutputSpec shapes the prediction records.
type OutputSpec struct {
	// Passthrough lists (anonymized) fields copied into each prediction.
	Passthrough []string `yaml:"passthrough"`
	// PropagateHeaders lists the input record headers copied to each
	// event's prediction records and DLQ record, such as the W3C trace
	// context: [traceparent, tracestate]. Other headers are dropped, and so
	// is a value over pipeline.MaxPropagatedHeaderBytes. Names are
	// case-sensitive, listed once, and never driftline.* (the pipeline's
	// own headers). Default: none.
	PropagateHeaders []string `yaml:"propagate_headers"`
}

// LabelsSpec configures the label join.
type LabelsSpec struct {
	// Field is the label's field in label records (default "label").
	Field string `yaml:"field"`
	// TTL is how long a prediction waits for its label.
	TTL Duration `yaml:"ttl"`
	// MaxPending bounds the prediction cache's size.
	MaxPending int `yaml:"max_pending"`
	// Min and Max, when set, bound a regression model's labels (kind
	// linear, or model.onnx): a label outside [Min, Max] goes to the DLQ.
	// Every label must be finite whatever they say; a binary model takes
	// 0 and 1 only, a softmax model the class indexes 0..classes-1, and
	// Min and Max do not apply to them.
	Min *float64 `yaml:"min"`
	Max *float64 `yaml:"max"`
	// MaxIDBytes bounds a label's event id, in bytes (default
	// DefaultLabelMaxIDBytes, at most 65536): a label with a longer id
	// goes to the DLQ. An event whose id is longer can't be labelled, so
	// keep it at least as long as your ids.
	MaxIDBytes int `yaml:"max_id_bytes"`
	// MaxParked bounds the labels parked in Redis because they arrived
	// before their prediction (default DefaultMaxParkedLabels): past it a
	// label that would be parked goes to the DLQ instead, and is counted
	// in driftline_labels_parked_overflow_total. With MaxIDBytes it bounds
	// the parked labels' Redis memory: each takes its key twice (its own
	// entry and the expiry index's member), at most
	// 2.5×(len(redis.key_prefix) + 12 + max_id_bytes) + 384 bytes
	// (stages.ParkedLabelBytes): at the defaults 52 MiB when every id is
	// 256 bytes long, 26 MiB for 36-byte ids.
	MaxParked int `yaml:"max_parked"`
}

// DriftSpec configures the drift monitor, which watches the champion's
// inputs, prediction score and error stream and publishes alerts to
// topics.alerts. It runs when topics.alerts is set.
type DriftSpec struct {
	// Watch chooses the subjects: "features" (every numeric field, KS),
	// "categories" (every categorical field and every text field of
	// stages.text.tokens, chi-square over folded hash codes), "prediction"
	// (the score distribution, KS), "error" (the error stream), or the
	// name of one numeric, categorical or text field. Absent: features,
	// prediction and error. A continually learning model's score
	// distribution moves while it learns, so watch its inputs and errors
	// rather than its predictions.
	Watch []string `yaml:"watch,omitempty"`
	// CategoryBins is the number of bins the categorical subjects' hash
	// codes are folded into, in [2, 4096] (default 64).
	CategoryBins int `yaml:"category_bins"`
	// MinPSI is the effect-size floor: a significant shift is a drift
	// when its PSI is at least MinPSI, and a warning otherwise, in
	// [0, 10) (0: the default, 0.1).
	MinPSI float64 `yaml:"min_psi"`
	// ErrorDetector is the detector on the 0/1 error stream: adwin
	// (default), ddm, eddm, hddm_a, hddm_w or page_hinkley.
	ErrorDetector string `yaml:"error_detector"`
	// Window is the rows per distribution test round (default 5000); the
	// first Window rows form the reference.
	Window int `yaml:"window"`
	// Alpha is the false discovery rate across features (default 0.001).
	Alpha float64 `yaml:"alpha"`
	// MinSamples is the samples a detector needs before it may alert
	// (default 1000).
	MinSamples int `yaml:"min_samples"`
	// CoolDown is the quiet time per subject after an episode resolves
	// (default 15m).
	CoolDown Duration `yaml:"cooldown"`
	// WarmUp is the rows skipped before the distribution references are
	// built, so a cold-started model's untrained scores are not the
	// prediction reference (default 0).
	WarmUp int `yaml:"warmup"`
}

// RolloutSpec serves model.name's registry aliases as rollout arms inside
// the consumer, and picks up alias moves without a restart:
//
//	rollout:
//	  canary_percent: 10     # share of keys the "canary" alias serves, 0..100
//	  shadow_topic: preds-shadow
//	  watch_interval: 1s     # registry poll period (bounds convergence)
//	  gate: {metric: accuracy, max_delta: 0.01}   # see models/rollout.GateSpec
//	  retrain: {on_drift: true, mode: reset}      # see RetrainSpec
type RolloutSpec struct {
	// CanaryPercent is the share of keys (sticky by entity or event id)
	// that the canary serves, in [0, 100].
	CanaryPercent int `yaml:"canary_percent"`
	// ShadowTopic receives the shadow's predictions; without it the shadow
	// alias still scores and learns from every label (the rollout gate
	// measures it), but its predictions are not published.
	ShadowTopic string `yaml:"shadow_topic"`
	// WatchInterval is how often the registry's aliases are polled, between
	// 1ms and 1m (default 1s).
	WatchInterval Duration `yaml:"watch_interval"`
	// Gate is the rule that moves a candidate from shadow through the
	// canary steps to champion, or rolls it back: a models/rollout.GateSpec,
	// which owns its fields, defaults and validation. The spec keeps the
	// YAML; the composition root decodes it with DecodeBlock.
	Gate Block `yaml:"gate"`
	// Retrain says when and how candidates are retrained from recent
	// labelled rows. Nil means every field takes its default
	// (DefaultRetrainSpec); RetrainOrDefault merges.
	Retrain *RetrainSpec `yaml:"retrain"`
}

// RetrainSpec says when a candidate is retrained and on what:
//
//	retrain:
//	  on_drift: true     # an error-drift alert on the champion starts a retrain
//	  every: 0s          # also retrain on this schedule (0: off; otherwise ≥ 1s)
//	  mode: reset        # reset: a fresh learner from the spec; warm: a copy of the champion
//	  window: 20000      # most labelled rows a retrain trains on, the newest (≥ 1)
//	  min_rows: 200      # fewest rows a retrain trains on (1..window)
//	  holdout: 0.2       # newest share held out to measure the candidate, in (0, 0.9]
//	  since_drift: true  # on a drift trigger, wait for and train on the rows labelled after the alert
//	  source: window     # window: rows the label join learned, in memory; kafka: replay the input and labels topics; lake: the live lake's events and labels
//	  lookback: 15m      # with source kafka or lake: the most history replayed (≥ 1s)
//	  warmup: 0s         # with source kafka or lake: history replayed before the rows, to warm dedupe and entity aggregates (0s: off)
//
// A field that is absent takes its default. A zero number also means the
// default, except every and warmup, whose 0 turns them off (their default).
type RetrainSpec struct {
	// OnDrift starts a retrain when an error-drift alert opens on the
	// champion (default true).
	OnDrift *bool `yaml:"on_drift"`
	// Every, when not 0, also retrains on this schedule; at least 1s.
	// 0 (the default) turns scheduled retraining off.
	Every Duration `yaml:"every"`
	// Mode is reset (a fresh learner from the spec's model block) or warm
	// (a copy of the champion, trained further) (default
	// DefaultRetrainMode).
	Mode string `yaml:"mode"`
	// Window is the most labelled rows a retrain trains on, the newest:
	// the rows the window source keeps in memory, or the rows a kafka
	// source keeps of its replay; ≥ 1 (default DefaultRetrainWindow).
	Window int `yaml:"window"`
	// MinRows is the fewest rows a retrain trains on, in 1..Window
	// (default DefaultRetrainMinRows).
	MinRows int `yaml:"min_rows"`
	// Holdout is the newest share of the rows held out to measure the
	// candidate at registration, in (0, 0.9] (default
	// DefaultRetrainHoldout).
	Holdout float64 `yaml:"holdout"`
	// SinceDrift, on a drift trigger, trains only on the rows labelled
	// after the alert arrived, which come from the new concept: the job
	// waits until MinRows of them are in the window (default true). Off,
	// a drift trigger trains on the whole window at once.
	SinceDrift *bool `yaml:"since_drift"`
	// Source is where the training rows come from (default
	// DefaultRetrainSource):
	//   - window: the Window newest rows the label join of this instance
	//     learned, kept in memory (empty after a restart, and only the
	//     labels of this instance's share of the labels topic);
	//   - kafka: the input topic's records of the last Lookback, replayed
	//     through the preparation stages under a state prefix of their own,
	//     joined by schema.id_field to the labels topic's records of the
	//     same span; the Window newest joined rows. It needs topics.labels.
	//   - lake: the live lake's events (see LakeSpec) with event times in
	//     the last Lookback, featurized under a state prefix of their own
	//     (they were anonymized before the lake), joined by event id to the
	//     labels the lake's labels table holds; the Window newest joined
	//     rows. It needs the lake block.
	Source string `yaml:"source"`
	// Lookback bounds the history a kafka source replays: the input records
	// with timestamps in the last Lookback (and, on a drift trigger with
	// since_drift, after the alert); at least 1s (default
	// DefaultRetrainLookback). The lake source reads the events of the last
	// Lookback the same way; the window source ignores it.
	Lookback Duration `yaml:"lookback"`
	// Warmup is the history a kafka or lake source replays before its
	// training rows through the stateful stages only (dedupe and entity
	// aggregates), so that the rows' entity counts, means and times since
	// the previous event, and the duplicates dropped, match what the live
	// pipeline computed for them rather than starting empty at the rows'
	// first event. The replay starts at max(from - Warmup, now - Lookback):
	// Lookback bounds the whole replay, warm-up included. An entity seen
	// only before the replay's start still starts empty. Each retrain
	// pays for it: the warm-up's events go through the preparation stages
	// (and their Redis state under the replay's prefix) like the rows', in
	// the governor's loop (which renews its lease meanwhile), so rollout
	// decisions wait for it. 0 (the default) turns it off; not negative.
	// The window source ignores it (its rows carry the live features).
	Warmup Duration `yaml:"warmup"`
}

// The values of rollout.retrain.mode.
const (
	RetrainModeReset = "reset"
	RetrainModeWarm  = "warm"
)

// The values of rollout.retrain.source.
const (
	RetrainSourceWindow = "window"
	RetrainSourceKafka  = "kafka"
	RetrainSourceLake   = "lake"
)

// Defaults of rollout.retrain (see DefaultRetrainSpec).
const (
	DefaultRetrainOnDrift    = true
	DefaultRetrainEvery      = 0 * time.Second // off
	DefaultRetrainMode       = RetrainModeReset
	DefaultRetrainWindow     = 20_000
	DefaultRetrainMinRows    = 200
	DefaultRetrainHoldout    = 0.2
	DefaultRetrainSinceDrift = true
	DefaultRetrainSource     = RetrainSourceWindow
	DefaultRetrainLookback   = 15 * time.Minute
)

// DefaultRetrainSpec returns the retrain settings a spec without
// rollout.retrain gets, every field set.
func DefaultRetrainSpec() RetrainSpec { return RetrainSpec{}.withDefaults() }

// RetrainOrDefault returns rollout.retrain with every absent or
// zero-for-default field set to its default; a nil RolloutSpec or retrain
// gives DefaultRetrainSpec. Its pointer fields are never nil.
func (r *RolloutSpec) RetrainOrDefault() RetrainSpec {
	if r == nil || r.Retrain == nil {
		return DefaultRetrainSpec()
	}
	return r.Retrain.withDefaults()
}

func (r RetrainSpec) withDefaults() RetrainSpec {
	r.OnDrift = ptr(r.OnDriftOrDefault())
	if r.Mode == "" {
		r.Mode = DefaultRetrainMode
	}
	if r.Window == 0 {
		r.Window = DefaultRetrainWindow
	}
	if r.MinRows == 0 {
		r.MinRows = DefaultRetrainMinRows
	}
	if r.Holdout == 0 {
		r.Holdout = DefaultRetrainHoldout
	}
	r.SinceDrift = ptr(r.SinceDriftOrDefault())
	if r.Source == "" {
		r.Source = DefaultRetrainSource
	}
	if r.Lookback == 0 {
		r.Lookback = Duration(DefaultRetrainLookback)
	}
	return r
}

func ptr[T any](v T) *T { return &v }

// OnDriftOrDefault is OnDrift, or true when absent.
func (r RetrainSpec) OnDriftOrDefault() bool { return r.OnDrift == nil || *r.OnDrift }

// SinceDriftOrDefault is SinceDrift, or true when absent.
func (r RetrainSpec) SinceDriftOrDefault() bool { return r.SinceDrift == nil || *r.SinceDrift }

// Duration is a time.Duration written as "250ms", "5s" or "24h" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string. Its error names no position:
// the spec's decoder positions it at the node.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a duration such as 250ms, 5s or 24h, got %s", describeNode(n))
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("invalid duration `%s` (want e.g. 250ms, 5s, 24h)", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a Go duration string, so that a
// marshaled spec parses again.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// SpecError is a problem with a spec, located by file, line and field path.
type SpecError struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *SpecError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if e.Field != "" {
		return loc + ": " + e.Field + ": " + e.Msg
	}
	return loc + ": " + e.Msg
}

// specSource remembers where each field path was written.
type specSource struct {
	file  string
	lines map[string]int
}

// LoadSpec reads, parses and validates the spec file at path.
func LoadSpec(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	return ParseSpec(path, data)
}

// ParseSpec parses and validates a spec; name is used in error messages.
// Unknown keys are errors. The returned error joins every problem found,
// each a *SpecError naming the file, line and field.
func ParseSpec(name string, data []byte) (*Spec, error) {
	s, err := DecodeSpec(name, data)
	if err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// DecodeSpec parses a spec and applies its defaults without checking the
// rules between fields (Validate), so that a caller can report those
// problems together with the checks of the blocks other packages own. It
// fails on YAML syntax, unknown keys and values of the wrong type, and on
// an empty document; every error is a *SpecError positioned by the YAML
// node it is about.
func DecodeSpec(name string, data []byte) (*Spec, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		var le *yaml.LoadError
		if errors.As(err, &le) {
			return nil, &SpecError{File: name, Line: le.Mark.Line, Msg: "YAML syntax: " + le.Message}
		}
		return nil, &SpecError{File: name, Msg: "YAML: " + err.Error()}
	}
	if len(root.Content) == 0 {
		return nil, &SpecError{File: name, Msg: "the spec is empty: want a YAML mapping with name, topics, kafka, schema, stages and model (deploy/examples/minimal.yaml is a complete small one)"}
	}
	doc := root.Content[0]
	src := &specSource{file: name, lines: map[string]int{}}
	indexLines(doc, "", src.lines)
	s := Spec{source: src}
	var d nodeDecoder
	d.decode(doc, reflect.ValueOf(&s).Elem(), "")
	if len(d.errs) > 0 {
		errs := make([]error, len(d.errs))
		for i, e := range d.errs {
			errs[i] = &SpecError{File: name, Line: e.line, Field: e.path, Msg: e.msg}
		}
		return nil, errors.Join(errs...)
	}
	s.source = src
	s.applyDefaults()
	return &s, nil
}

// indexLines records the line of every mapping key and sequence item under
// paths like "schema.fields[2].type".
func indexLines(n *yaml.Node, path string, lines map[string]int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			lines[p] = k.Line
			indexLines(v, p, lines)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			lines[p] = c.Line
			indexLines(c, p, lines)
		}
	}
}

// errAt builds a SpecError for the field path, with the line it was written on
// (or the line of its nearest written parent).
func (s *Spec) errAt(path, format string, args ...any) error {
	e := &SpecError{Field: path, Msg: fmt.Sprintf(format, args...)}
	if s.source != nil {
		e.File = s.source.file
		for p := path; p != ""; p = parentPath(p) {
			if l, ok := s.source.lines[p]; ok {
				e.Line = l
				break
			}
		}
	}
	return e
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// Defaults for optional spec values.
const (
	DefaultBatchSize      = 512
	DefaultBatchLinger    = 5 * time.Millisecond
	DefaultMaxInFlight    = 4
	DefaultHashBits       = 18
	DefaultDedupeTTL      = 24 * time.Hour
	DefaultEntityTTL      = 7 * 24 * time.Hour
	DefaultMaxStringBytes = 4096
	DefaultSessionTimeout = 10 * time.Second
	DefaultLabelTTL       = time.Hour
	DefaultMaxPending     = 1_000_000
	// DefaultLabelMaxIDBytes is labels.max_id_bytes' default.
	DefaultLabelMaxIDBytes = 256
	// DefaultMaxParkedLabels is labels.max_parked's default.
	DefaultMaxParkedLabels = 50_000
)

func (s *Spec) applyDefaults() {
	if s.Batch.Size == 0 {
		s.Batch.Size = DefaultBatchSize
	}
	if s.Batch.Linger == 0 {
		s.Batch.Linger = Duration(DefaultBatchLinger)
	}
	if s.Batch.MaxInFlight == 0 {
		s.Batch.MaxInFlight = DefaultMaxInFlight
	}
	if s.Stages.Featurize.HashBits == 0 {
		s.Stages.Featurize.HashBits = DefaultHashBits
	}
	if s.Stages.Dedupe.TTL == 0 {
		s.Stages.Dedupe.TTL = Duration(DefaultDedupeTTL)
	}
	if e := s.Stages.Featurize.Entity; e != nil && e.TTL == 0 {
		e.TTL = Duration(DefaultEntityTTL)
	}
	if s.Schema.MaxStringBytes == 0 {
		s.Schema.MaxStringBytes = DefaultMaxStringBytes
	}
	if s.Kafka.SessionTimeout == 0 {
		s.Kafka.SessionTimeout = Duration(DefaultSessionTimeout)
	}
	if s.Kafka.ClientID == "" {
		s.Kafka.ClientID = "driftline"
	}
	if s.Kafka.Group == "" {
		s.Kafka.Group = "driftline-" + s.Name
	}
	if s.Redis.KeyPrefix == "" {
		s.Redis.KeyPrefix = "driftline:" + s.Name + ":"
	}
	if s.Model.Version == "" {
		s.Model.Version = "1"
	}
	if s.Model.Kind == "" {
		s.Model.Kind = "logistic"
	}
	if o := s.Model.ONNX; o != nil && o.ExecutionProvider == "" {
		o.ExecutionProvider = ProviderCPU
	}
	s.applyTextDefaults()
	if s.Stages.Anonymize.DLQPayload == "" {
		s.Stages.Anonymize.DLQPayload = "raw"
		if s.HasPII() {
			s.Stages.Anonymize.DLQPayload = "encrypt"
		}
	}
	if s.Labels.Field == "" {
		s.Labels.Field = "label"
	}
	if s.Labels.TTL == 0 {
		s.Labels.TTL = Duration(DefaultLabelTTL)
	}
	if s.Labels.MaxPending == 0 {
		s.Labels.MaxPending = DefaultMaxPending
	}
	if s.Labels.MaxIDBytes == 0 {
		s.Labels.MaxIDBytes = DefaultLabelMaxIDBytes
	}
	if s.Labels.MaxParked == 0 {
		s.Labels.MaxParked = DefaultMaxParkedLabels
	}
	s.LearnerState.applyDefaults()
	if s.Lake != nil {
		s.Lake.applyDefaults()
	}
}

// Validate checks the spec and returns every problem found, joined.
func (s *Spec) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, s.errAt(path, format, args...)) }
	if s.Name == "" {
		add("name", "is required")
	}
	if s.Topics.Input == "" {
		add("topics.input", "is required")
	}
	if s.Topics.Predictions == "" {
		add("topics.predictions", "is required")
	}
	if s.Topics.DLQ == "" {
		add("topics.dlq", "is required")
	}
	if s.Batch.Size < 1 || s.Batch.Size > 1<<20 {
		add("batch.size", "must be in [1, 1048576], got %d", s.Batch.Size)
	}
	if s.Batch.MaxInFlight < 1 {
		add("batch.max_in_flight", "must be at least 1, got %d", s.Batch.MaxInFlight)
	}
	s.validateConnections(add)
	if id := s.Kafka.TransactionalID; id != "" {
		if !s.Kafka.ExactlyOnce {
			add("kafka.transactional_id", "applies to exactly_once: true only")
		}
		if strings.IndexFunc(id, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
			add("kafka.transactional_id", "must not contain spaces or control characters, got %q", id)
		}
	}
	fields := map[string]*FieldSpec{}
	if len(s.Schema.Fields) == 0 {
		add("schema.fields", "must list at least one field")
	}
	for i := range s.Schema.Fields {
		f := &s.Schema.Fields[i]
		p := fmt.Sprintf("schema.fields[%d]", i)
		if f.Name == "" {
			add(p+".name", "is required")
			continue
		}
		if _, dup := fields[f.Name]; dup {
			add(p+".name", "field %q is listed twice", f.Name)
		}
		fields[f.Name] = f
		switch f.Type {
		case TypeString, TypeFloat, TypeInt, TypeBool, TypeTimestamp:
		default:
			add(p+".type", "unknown type %q (want string, float, int, bool or timestamp)", f.Type)
		}
		if (f.Min != nil || f.Max != nil) && f.Type != TypeFloat && f.Type != TypeInt {
			add(p+".min", "a range applies to float and int fields only, not %s", f.Type)
		}
		if f.Min != nil && f.Max != nil && *f.Min > *f.Max {
			add(p+".min", "min %g is above max %g", *f.Min, *f.Max)
		}
		if len(f.Enum) > 0 && f.Type != TypeString {
			add(p+".enum", "an enum applies to string fields only, not %s", f.Type)
		}
	}
	checkField := func(path, name string, types ...FieldType) {
		f, ok := fields[name]
		if !ok {
			add(path, "names %q, which is not in schema.fields", name)
			return
		}
		for _, t := range types {
			if f.Type == t {
				return
			}
		}
		add(path, "field %q has type %s, want %v", name, f.Type, types)
	}
	if s.Schema.IDField == "" {
		add("schema.id_field", "is required")
	} else {
		checkField("schema.id_field", s.Schema.IDField, TypeString, TypeInt)
		if f := fields[s.Schema.IDField]; f != nil && !f.Required {
			add("schema.id_field", "field %q must be required", f.Name)
		}
	}
	if s.Schema.TimeField != "" {
		checkField("schema.time_field", s.Schema.TimeField, TypeTimestamp)
	}
	an := &s.Stages.Anonymize
	needHMAC, needAES := false, false
	seenAnon := map[string]bool{}
	for i, af := range an.Fields {
		p := fmt.Sprintf("stages.anonymize.fields[%d]", i)
		checkField(p+".field", af.Field, TypeString)
		if seenAnon[af.Field] {
			add(p+".field", "field %q has two operators", af.Field)
		}
		seenAnon[af.Field] = true
		switch af.Op {
		case OpPseudonymize:
			needHMAC = true
		case OpEncrypt:
			needAES = true
		case OpMask, OpRedact, OpDrop:
		default:
			add(p+".op", "unknown operator %q (want pseudonymize, mask, redact, drop or encrypt)", af.Op)
		}
		if af.KeepLast < 0 {
			add(p+".keep_last", "must not be negative")
		}
		if f := fields[af.Field]; f != nil && af.Field == s.Schema.IDField {
			add(p+".field", "the id field %q cannot be anonymized", f.Name)
		}
	}
	for i := range s.Schema.Fields {
		f := &s.Schema.Fields[i]
		if f.PII != "" && f.PII != "none" && !seenAnon[f.Name] {
			add(fmt.Sprintf("schema.fields[%d].pii", i), "field %q is PII (%s) but stages.anonymize has no operator for it", f.Name, f.PII)
		}
	}
	textHMAC, textAES := s.validateText(add, checkField)
	needHMAC, needAES = needHMAC || textHMAC, needAES || textAES
	if an.HMACKeyEnv != "" && an.HMACKeyFile != "" {
		add("stages.anonymize.hmac_key_file", "set hmac_key_env or hmac_key_file, not both")
	}
	if an.EncryptionKeyEnv != "" && an.EncryptionKeyFile != "" {
		add("stages.anonymize.encryption_key_file", "set encryption_key_env or encryption_key_file, not both")
	}
	if needHMAC && an.HMACKeyEnv == "" && an.HMACKeyFile == "" {
		add("stages.anonymize.hmac_key_env", "pseudonymize needs a key: set hmac_key_env or hmac_key_file")
	}
	switch an.DLQPayload {
	case "encrypt":
		needAES = true
	case "raw":
	default:
		add("stages.anonymize.dlq_payload", "unknown value %q (want encrypt or raw)", an.DLQPayload)
	}
	if needAES {
		if an.EncryptionKeyEnv == "" && an.EncryptionKeyFile == "" {
			add("stages.anonymize.encryption_key_env", "the encrypt operator and dlq_payload: encrypt need a key: set encryption_key_env or encryption_key_file (or dlq_payload: raw to keep plaintext PII in the DLQ)")
		}
		if an.EncryptionKeyID == "" {
			add("stages.anonymize.encryption_key_id", "encrypt needs a key id for the driftline.key_id header")
		}
	}
	fz := &s.Stages.Featurize
	for i, n := range fz.Numeric {
		checkField(fmt.Sprintf("stages.featurize.numeric[%d]", i), n, TypeFloat, TypeInt, TypeBool)
	}
	for i, n := range fz.Categorical {
		checkField(fmt.Sprintf("stages.featurize.categorical[%d]", i), n, TypeString, TypeInt, TypeBool)
	}
	if fz.HashBits < 1 || fz.HashBits > 24 {
		add("stages.featurize.hash_bits", "must be in [1, 24], got %d", fz.HashBits)
	}
	if len(fz.Numeric)+len(fz.Categorical)+len(s.Stages.Text.Tokens) == 0 {
		add("stages.featurize", "needs at least one numeric or categorical field")
	}
	if ttl := s.Stages.Dedupe.TTL.D(); ttl < time.Millisecond {
		add("stages.dedupe.ttl", "must be at least 1ms (ids are kept in buckets of whole milliseconds), got %s", ttl)
	}
	if n := s.Stages.Dedupe.RecentIDs; n != nil && (*n < 0 || *n > 1<<24) {
		add("stages.dedupe.recent_ids", "must be in [0, 16777216], got %d", *n)
	}
	if e := fz.Entity; e != nil {
		checkField("stages.featurize.entity.field", e.Field, TypeString, TypeInt)
		if e.MeanOf != "" {
			checkField("stages.featurize.entity.mean_of", e.MeanOf, TypeFloat, TypeInt)
		}
		if e.LocalCache != nil && *e.LocalCache < 0 {
			add("stages.featurize.entity.local_cache", "must not be negative")
		}
	}
	for i, n := range s.Output.Passthrough {
		if _, ok := fields[n]; !ok {
			add(fmt.Sprintf("output.passthrough[%d]", i), "names %q, which is not in schema.fields", n)
		}
	}
	seenHeader := map[string]bool{}
	for i, h := range s.Output.PropagateHeaders {
		p := fmt.Sprintf("output.propagate_headers[%d]", i)
		switch {
		case h == "" || len(h) > 255 || strings.IndexFunc(h, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0:
			add(p, "must be a header name of 1 to 255 printable ASCII characters without spaces, got %q", h)
		case strings.HasPrefix(h, "driftline."):
			add(p, "%q is one of the pipeline's own headers (driftline.*)", h)
		case seenHeader[h]:
			add(p, "header %q is listed twice", h)
		}
		seenHeader[h] = true
	}
	if s.Model.Name == "" {
		add("model.name", "is required")
	}
	switch s.Model.Engine {
	case "", "go":
		if s.Model.ExecutionProvider != "" {
			add("model.execution_provider", "applies to model.engine onnxruntime only")
		}
	case "onnxruntime":
		switch s.Model.ExecutionProvider {
		case "", ProviderCPU, ProviderCUDA:
		default:
			add("model.execution_provider", "unknown execution provider %q (want cpu or cuda)", s.Model.ExecutionProvider)
		}
	default:
		add("model.engine", "unknown engine %q (want go or onnxruntime)", s.Model.Engine)
	}
	if s.Model.Classes < 0 {
		add("model.classes", "must not be negative, got %d", s.Model.Classes)
	}
	if s.Model.DeviceID < 0 {
		add("model.device_id", "must not be negative, got %d", s.Model.DeviceID)
	}
	if t := s.Model.Threshold; t != nil {
		if !(*t > 0 && *t < 1) {
			add("model.threshold", "must be in (0, 1), got %v", *t)
		}
	}
	if o := s.Model.ONNX; o != nil {
		if o.Path == "" {
			add("model.onnx.path", "is required")
		}
		if len(o.Inputs) == 0 {
			add("model.onnx.inputs", "must map at least one model input to features")
		}
		seenInput := map[string]bool{}
		for i, in := range o.Inputs {
			p := fmt.Sprintf("model.onnx.inputs[%d]", i)
			if in.Input == "" {
				add(p+".input", "is required")
			} else if seenInput[in.Input] {
				add(p+".input", "input %q is mapped twice", in.Input)
			}
			seenInput[in.Input] = true
			if len(in.Features) == 0 {
				add(p+".features", "must list at least one numeric field")
			}
			for k, n := range in.Features {
				checkField(fmt.Sprintf("%s.features[%d]", p, k), n, TypeFloat, TypeInt, TypeBool)
			}
		}
		switch o.ExecutionProvider {
		case "", ProviderCPU:
			if o.DeviceID != 0 {
				add("model.onnx.device_id", "applies to execution_provider cuda only")
			}
		case ProviderCUDA:
			if o.DeviceID < 0 {
				add("model.onnx.device_id", "must not be negative, got %d", o.DeviceID)
			}
		default:
			add("model.onnx.execution_provider", "unknown provider %q (want cpu or cuda)", o.ExecutionProvider)
		}
		if o.LatencyBudget < 0 {
			add("model.onnx.latency_budget", "must not be negative")
		}
	}
	switch s.Drift.ErrorDetector {
	case "", "adwin", "ddm", "eddm", "hddm_a", "hddm_w", "page_hinkley":
	default:
		add("drift.error_detector", "unknown detector %q (want adwin, ddm, eddm, hddm_a, hddm_w or page_hinkley)", s.Drift.ErrorDetector)
	}
	if s.Drift.Window < 0 || s.Drift.MinSamples < 0 || s.Drift.WarmUp < 0 || s.Drift.Alpha < 0 || s.Drift.Alpha >= 1 {
		add("drift", "window and min_samples must not be negative, alpha must be in [0, 1)")
	}
	s.validateDriftWatch(add)
	if s.Labels.MaxPending < 0 {
		add("labels.max_pending", "must not be negative")
	}
	s.validateLabels(add)
	s.validateLearnerState(add)
	s.validateLake(add)
	if r := s.Rollout; r != nil {
		if r.CanaryPercent < 0 || r.CanaryPercent > 100 {
			add("rollout.canary_percent", "must be in [0, 100], got %d", r.CanaryPercent)
		}
		for _, o := range s.coreTopics() {
			if r.ShadowTopic != "" && r.ShadowTopic == o.topic {
				add("rollout.shadow_topic", "must differ from every other topic, but %s is also %q", o.path, r.ShadowTopic)
			}
		}
		if r.WatchInterval != 0 && (r.WatchInterval.D() < time.Millisecond || r.WatchInterval.D() > time.Minute) {
			add("rollout.watch_interval", "must be between 1ms and 1m, got %s", r.WatchInterval.D())
		}
		if s.Model.ONNX != nil {
			add("rollout", "does not apply to model.onnx (a bring-your-own model has no registry snapshot)")
		}
		if s.Topics.Labels == "" {
			add("rollout", "needs topics.labels: the gate compares candidate and champion on labelled outcomes, and retraining learns from them")
		}
		if rt := r.Retrain; rt != nil {
			s.validateRetrain(rt, add)
		}
	}
	if a := s.Topics.Audit; a != "" {
		others := s.coreTopics()
		if s.Rollout != nil {
			others = append(others, namedTopic{"rollout.shadow_topic", s.Rollout.ShadowTopic})
		}
		for _, o := range others {
			if a == o.topic {
				add("topics.audit", "must differ from every other topic, but %s is also %q", o.path, a)
			}
		}
	}
	return errors.Join(errs...)
}

// validateLabels checks labels.min, max, max_id_bytes and max_parked.
func (s *Spec) validateLabels(add func(path, format string, args ...any)) {
	l := &s.Labels
	regression := s.Model.Kind == "linear" || s.Model.ONNX != nil
	for _, b := range []struct {
		path string
		v    *float64
	}{{"labels.min", l.Min}, {"labels.max", l.Max}} {
		switch {
		case b.v == nil:
		case math.IsNaN(*b.v) || math.IsInf(*b.v, 0):
			add(b.path, "must be finite, got %v", *b.v)
		case !regression:
			add(b.path, "bounds a regression's labels (kind linear or model.onnx); kind %s takes its classes only", s.Model.Kind)
		}
	}
	if l.Min != nil && l.Max != nil && *l.Min > *l.Max {
		add("labels.min", "min %g is above max %g", *l.Min, *l.Max)
	}
	if l.MaxIDBytes < 1 || l.MaxIDBytes > 65536 {
		add("labels.max_id_bytes", "must be in [1, 65536], got %d", l.MaxIDBytes)
	}
	if l.MaxParked < 1 {
		add("labels.max_parked", "must be at least 1, got %d", l.MaxParked)
	}
}

// namedTopic is a topic with the field path that names it.
type namedTopic struct{ path, topic string }

// coreTopics are topics.input, predictions, dlq, labels and alerts.
func (s *Spec) coreTopics() []namedTopic {
	return []namedTopic{
		{"topics.input", s.Topics.Input},
		{"topics.predictions", s.Topics.Predictions},
		{"topics.dlq", s.Topics.DLQ},
		{"topics.labels", s.Topics.Labels},
		{"topics.alerts", s.Topics.Alerts},
	}
}

// validateRetrain checks rollout.retrain with defaults applied, naming the
// field as written.
func (s *Spec) validateRetrain(r *RetrainSpec, add func(path, format string, args ...any)) {
	const p = "rollout.retrain."
	m := r.withDefaults()
	if e := r.Every.D(); e != 0 && e < time.Second {
		add(p+"every", "must be 0 (off) or at least 1s, got %s", e)
	}
	switch m.Mode {
	case RetrainModeReset, RetrainModeWarm:
	default:
		add(p+"mode", "unknown mode %q (want reset or warm)", r.Mode)
	}
	if r.Window < 0 {
		add(p+"window", "must be at least 1 (0 or absent: %d), got %d", DefaultRetrainWindow, r.Window)
	}
	if r.MinRows < 0 || (m.Window >= 1 && m.MinRows > m.Window) {
		add(p+"min_rows", "must be in 1..window (%d), got %d", m.Window, r.MinRows)
	}
	if !(m.Holdout > 0 && m.Holdout <= 0.9) {
		add(p+"holdout", "must be in (0, 0.9], got %v", r.Holdout)
	}
	switch m.Source {
	case RetrainSourceWindow:
	case RetrainSourceKafka:
		if s.Topics.Labels == "" {
			add(p+"source", "kafka joins the labels topic, but topics.labels is not set")
		}
	case RetrainSourceLake:
		if s.Lake == nil {
			add(p+"source", "lake reads the live lake, but the spec has no lake block")
		}
	default:
		add(p+"source", "unknown source %q (want window, kafka or lake)", r.Source)
	}
	if l := r.Lookback.D(); l != 0 && l < time.Second {
		add(p+"lookback", "must be at least 1s (0 or absent: %s), got %s", DefaultRetrainLookback, l)
	}
	if r.Warmup < 0 {
		add(p+"warmup", "must not be negative (0s or absent: off), got %s", r.Warmup.D())
	}
}

// Field returns the schema's field with the given name, or nil.
func (s *Spec) Field(name string) *FieldSpec {
	for i := range s.Schema.Fields {
		if s.Schema.Fields[i].Name == name {
			return &s.Schema.Fields[i]
		}
	}
	return nil
}

// FieldIndex returns the column index of the named field, or -1.
func (s *Spec) FieldIndex(name string) int {
	for i := range s.Schema.Fields {
		if s.Schema.Fields[i].Name == name {
			return i
		}
	}
	return -1
}

// JoinSorted joins errs like errors.Join, with the *SpecErrors among them
// (and among errors they join) ordered by line, so that a file's problems
// read top to bottom; errors without a line come last, in their order.
func JoinSorted(errs ...error) error {
	var flat []error
	var walk func(err error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		flat = append(flat, err)
	}
	for _, e := range errs {
		walk(e)
	}
	line := func(err error) int {
		var se *SpecError
		if errors.As(err, &se) && se.Line > 0 {
			return se.Line
		}
		return math.MaxInt
	}
	slices.SortStableFunc(flat, func(a, b error) int { return cmp.Compare(line(a), line(b)) })
	return errors.Join(flat...)
}
