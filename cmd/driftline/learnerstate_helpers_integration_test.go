//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/internal/app"
	"github.com/driftline/driftline/models/governance"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/streams"
	"github.com/driftline/driftline/testkit/streams/feed"
)

// statePipeline is a pipeline of the demo spec with a learner-state log,
// named so that several can share one broker and one Redis: its topics,
// group, key prefix and model name carry the name.
type statePipeline struct {
	spec *pipeline.Spec
	path string
}

// statePipelineSpec writes the demo spec (without its rollout block unless
// withRollout) as pipeline name, with topics.model_state, the
// learner_state block given, edit applied to the text, on broker and
// redisAddr; it creates the topics with inputParts partitions for the
// input and labelParts for the labels (4 for the rest).
func statePipelineSpec(t *testing.T, broker *kafkatest.Broker, redisAddr, name string, withRollout bool, inputParts, labelParts int32, learnerState string, edit func(string) string) *statePipeline {
	t.Helper()
	t.Setenv("DRIFTLINE_DEMO_HMAC_KEY", "integration-hmac-key-0123456789abcdef")
	t.Setenv("DRIFTLINE_DEMO_AES_KEY", strings.Repeat("ab", 32))
	text := string(app.DemoSpec)
	if !withRollout {
		text = demoSpecWithoutRollout()
	}
	for _, topic := range []string{"events", "predictions", "events.dlq", "labels", "alerts", "audit", "predictions.shadow"} {
		text = strings.ReplaceAll(text, ": "+topic+"\n", ": "+name+"."+topic+"\n")
	}
	text = strings.Replace(text, "  audit: "+name+".audit\n", "  audit: "+name+".audit\n  model_state: "+name+".model-state\n", 1)
	text = strings.Replace(text, "name: demo\n", fmt.Sprintf("name: %s\nredis:\n  addr: %q\n", name, redisAddr), 1)
	text = strings.Replace(text, "kafka:\n", fmt.Sprintf("kafka:\n  brokers: [%q]\n", broker.Addr), 1)
	text = strings.Replace(text, "model:\n", "learner_state: {"+learnerState+"}\nmodel:\n", 1)
	// The group, and the model (whose registry entry and learner lease
	// are shared by every pipeline on one Redis), are the pipeline's own.
	text = strings.Replace(text, "  group: driftline-demo\n", "  group: driftline-"+name+"\n", 1)
	text = strings.Replace(text, "  name: demo-logistic\n", "  name: "+name+"-logistic\n", 1)
	if edit != nil {
		text = edit(text)
	}
	path := filepath.Join(t.TempDir(), name+".yaml")
	writeFile(t, path, text)
	spec, err := pipeline.LoadSpec(path)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Topics.ModelState == "" {
		t.Fatal("the spec has no topics.model_state")
	}
	broker.CreateTopic(t, spec.Topics.Input, inputParts)
	broker.CreateTopic(t, spec.Topics.Labels, labelParts)
	for _, topic := range []string{spec.Topics.Predictions, spec.Topics.DLQ, spec.Topics.Alerts, spec.Topics.Alerts + ".poison", spec.Topics.Audit} {
		broker.CreateTopic(t, topic, 4)
	}
	if spec.Rollout != nil {
		broker.CreateTopic(t, spec.Rollout.ShadowTopic, 4)
	}
	return &statePipeline{spec: spec, path: path}
}

// instance is one `driftline run` process with its admin address.
type instance struct {
	name, admin string
	cmd         *exec.Cmd
}

// stop sends sig and waits for the process to end.
func (in *instance) stop(sig syscall.Signal) {
	_ = in.cmd.Process.Signal(sig)
	_ = in.cmd.Wait()
}

// startInstance runs `driftline run` on p's spec with an admin address of
// its own.
func startInstance(t *testing.T, bin string, p *statePipeline, name string) *instance {
	t.Helper()
	admin := freeAddr(t)
	cmd := startProcess(t, bin, []string{"run", "--spec", p.path, "--admin", admin}, name)
	return &instance{name: name, admin: admin, cmd: cmd}
}

// ready reports whether the instance answers /readyz with 200.
func (in *instance) ready() bool {
	resp, err := http.Get("http://" + in.admin + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// metrics scrapes the instance's /metrics: the value of every sample of
// the metric called name, by its labels "k=v,…" (sorted by name); nil
// when the instance does not answer.
func (in *instance) metrics(name string) map[string]float64 {
	all := in.scrape()
	if all == nil {
		return nil
	}
	if out := all[name]; out != nil {
		return out
	}
	return map[string]float64{}
}

// scrape is one scrape of the instance's /metrics: every metric's samples
// as metrics gives them, by metric name; nil when the instance does not
// answer.
func (in *instance) scrape() map[string]map[string]float64 {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + in.admin + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil
	}
	all := make(map[string]map[string]float64, len(mfs))
	for name, mf := range mfs {
		out := map[string]float64{}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			out[strings.Join(labels, ",")] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
		all[name] = out
	}
	return all
}

// latestStates reads p's state topic (read committed under exactly-once)
// and returns the newest record of each version.
func latestStates(t *testing.T, broker *kafkatest.Broker, p *statePipeline) map[string]*governance.StateRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := map[string]*governance.StateRecord{}
	err := kafka.ReadTopics(ctx, broker.ClientConfig("state-reader"), p.spec.Kafka.ExactlyOnce, func(r *kafka.Record) error {
		rec, err := governance.DecodeStateRecord(r.Value)
		if err != nil {
			return fmt.Errorf("state record at offset %d: %w", r.Offset, err)
		}
		if cur := out[rec.Version]; cur == nil || rec.Mark().Newer(cur.Mark()) {
			out[rec.Version] = rec
		}
		return nil
	}, p.spec.Topics.ModelState)
	if err != nil && !strings.Contains(err.Error(), "does not exist") {
		t.Fatal(err)
	}
	return out
}

// produceStream writes n events of cfg to p's input topic at rate (0: as
// fast as the broker takes them), with their labels labelDelay (plus up to
// jitter) later unless labelDelay < 0, without malformed rows or
// duplicates.
func (p *statePipeline) produce(ctx context.Context, broker *kafkatest.Broker, cfg streams.Config, n int64, rate float64, labelDelay, jitter time.Duration) (*feed.Stats, error) {
	var stats feed.Stats
	fc := feed.Config{Stream: cfg, Events: n, Rate: rate, LabelDelay: labelDelay, LabelJitter: jitter}
	return &stats, p.produceFeed(ctx, broker, fc, labelDelay >= 0, &stats)
}

// produceFeed writes fc to p's input topic (and labels topic, with
// labels), counting into stats, which may be read meanwhile.
func (p *statePipeline) produceFeed(ctx context.Context, broker *kafkatest.Broker, fc feed.Config, labels bool, stats *feed.Stats) error {
	cl, err := kafka.NewProducer(kafka.ProducerConfig{Client: kafka.ClientConfig{Brokers: []string{broker.Addr}}, Linger: 2 * time.Millisecond})
	if err != nil {
		return err
	}
	defer cl.Close()
	fc.Topic = p.spec.Topics.Input
	if labels {
		fc.LabelsTopic = p.spec.Topics.Labels
	}
	if err := fc.Validate(); err != nil {
		return err
	}
	return feed.Produce(ctx, cl, fc, stats)
}

// streamLabels returns the labels of the first n events of cfg, and the id
// prefix of its events ("e-<seed>-").
func streamLabels(t *testing.T, cfg streams.Config, n int) ([]int, string) {
	t.Helper()
	gen, err := streams.NewGenerator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	labels := make([]int, n)
	prefix := ""
	var e streams.Event
	for i := range n {
		gen.Next(&e)
		labels[i] = e.Label
		if i == 0 {
			prefix = e.ID[:strings.LastIndexByte(e.ID, '-')+1]
		}
	}
	return labels, prefix
}

// prediction is one record of a predictions topic.
type prediction struct {
	EventID string  `json:"event_id"`
	Score   float64 `json:"score"`
	Version string  `json:"version"`
	Arm     string  `json:"arm"`
}

// predictionsOf reads p's predictions topic and returns, for each of the
// first n events of the stream with the id prefix, its first prediction
// (seen false when it has none).
func predictionsOf(t *testing.T, broker *kafkatest.Broker, p *statePipeline, prefix string, n int) (preds []prediction, seen []bool) {
	t.Helper()
	return predictionsIn(t, broker, p.spec.Topics.Predictions, prefix, n)
}

// predictionsIn is predictionsOf for any topic of prediction records (the
// shadow topic too).
func predictionsIn(t *testing.T, broker *kafkatest.Broker, topic, prefix string, n int) (preds []prediction, seen []bool) {
	t.Helper()
	preds, seen = make([]prediction, n), make([]bool, n)
	forEachRecord(t, broker, topic, func(r *kgo.Record) {
		var pr prediction
		if json.Unmarshal(r.Value, &pr) != nil || !strings.HasPrefix(pr.EventID, prefix) {
			return
		}
		i, ok := feed.EventIndex(pr.EventID)
		if !ok || i >= int64(n) || seen[i] {
			return
		}
		preds[i], seen[i] = pr, true
	})
	return preds, seen
}

// accuracy is the share of events [lo, hi) with a prediction whose class
// matches the label.
func accuracy(preds []prediction, seen []bool, labels []int, lo, hi int) (acc float64, n int) {
	right := 0
	for i := lo; i < hi; i++ {
		if !seen[i] {
			continue
		}
		n++
		if (preds[i].Score >= 0.5) == (labels[i] == 1) {
			right++
		}
	}
	if n == 0 {
		return 0, 0
	}
	return float64(right) / float64(n), n
}

// model is the metric labels of version of the pipeline's model.
func (p *statePipeline) model(version string) string {
	return "model=" + p.spec.Model.Name + ",version=" + version
}
