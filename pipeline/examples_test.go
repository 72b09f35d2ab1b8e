package pipeline_test

import (
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"

	"github.com/driftline/driftline/pipeline"
)

const repoRoot = ".."

// yamlDocs decodes every document of a YAML file.
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	if len(docs) == 0 {
		t.Fatalf("%s: no YAML documents", path)
	}
	return docs
}

// dig walks maps and lists by key or index; nil when a step is missing.
func dig(v any, path ...string) any {
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func TestDeployFilesParse(t *testing.T) {
	var files []string
	err := filepath.WalkDir(filepath.Join(repoRoot, "deploy"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch filepath.Ext(p) {
		case ".yaml", ".yml":
			yamlDocs(t, p)
			files = append(files, p)
		case ".json":
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if !json.Valid(data) {
				t.Errorf("%s: invalid JSON", p)
			}
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"compose.yaml", "k8s/deployment.yaml", "k8s/configmap.yaml", "grafana/driftline.json", "prometheus/alerts.yaml"} {
		if !slices.Contains(files, filepath.Join(repoRoot, "deploy", want)) {
			t.Errorf("deploy/%s is missing", want)
		}
	}
}

// The Kubernetes manifests run the ConfigMap's spec with the keys it names
// from Secrets, probe the admin port, and bound disruptions.
func TestKubernetesManifests(t *testing.T) {
	kinds := map[string]map[string]any{}
	for _, f := range []string{"deployment.yaml", "configmap.yaml", "secret.example.yaml", "keda-scaledobject.yaml"} {
		for _, d := range yamlDocs(t, filepath.Join(repoRoot, "deploy/k8s", f)) {
			kind, _ := d["kind"].(string)
			kinds[kind] = d
		}
	}
	for _, k := range []string{"Deployment", "ConfigMap", "Secret", "Service", "PodDisruptionBudget", "ScaledObject"} {
		if kinds[k] == nil {
			t.Fatalf("no %s in deploy/k8s", k)
		}
	}
	specText, _ := dig(kinds["ConfigMap"], "data", "spec.yaml").(string)
	example, err := os.ReadFile(filepath.Join(repoRoot, "deploy/examples/payments-fraud.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if specText != string(example) {
		t.Error("the ConfigMap's spec.yaml differs from deploy/examples/payments-fraud.yaml")
	}
	spec, err := pipeline.ParseSpec("deploy/k8s/configmap.yaml#spec.yaml", []byte(specText))
	if err != nil {
		t.Fatal(err)
	}
	c := dig(kinds["Deployment"], "spec", "template", "spec", "containers", "0")
	if c == nil {
		t.Fatal("deployment has no container")
	}
	adminPort := ""
	if ports, _ := dig(c, "ports").([]any); len(ports) > 0 {
		if dig(ports[0], "name") == "admin" {
			adminPort = strconv.Itoa(dig(ports[0], "containerPort").(int))
		}
	}
	if adminPort == "" || !strings.HasSuffix(spec.Admin.Addr, ":"+adminPort) {
		t.Errorf("container admin port %q does not match the spec's admin.addr %q", adminPort, spec.Admin.Addr)
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		if got := dig(c, probe, "httpGet", "path"); got != path {
			t.Errorf("%s path %v, want %s", probe, got, path)
		}
		if got := dig(c, probe, "httpGet", "port"); got != "admin" {
			t.Errorf("%s port %v, want the admin port", probe, got)
		}
	}
	env := map[string]any{}
	for _, e := range dig(c, "env").([]any) {
		env[dig(e, "name").(string)] = e
	}
	secretKeys := dig(kinds["Secret"], "stringData").(map[string]any)
	// The keys the spec names and the admin API's bootstrap token come
	// from the Secret.
	for _, name := range []string{spec.Stages.Anonymize.HMACKeyEnv, spec.Stages.Anonymize.EncryptionKeyEnv, "DRIFTLINE_ADMIN_TOKEN"} {
		e := env[name]
		ref := dig(e, "valueFrom", "secretKeyRef")
		if ref == nil {
			t.Errorf("env %s (named by the spec) is not a Secret ref", name)
			continue
		}
		if dig(ref, "name") != dig(kinds["Secret"], "metadata", "name") || secretKeys[dig(ref, "key").(string)] == nil {
			t.Errorf("env %s refers to %v, not a key of the example Secret", name, ref)
		}
	}
	args := strings.Join(toStrings(dig(c, "args")), " ")
	mount := dig(c, "volumeMounts", "0", "mountPath")
	if !strings.Contains(args, "--spec="+mount.(string)+"/spec.yaml") {
		t.Errorf("args %q do not run the mounted spec at %v", args, mount)
	}
	// The admin port listens on the pod IP, not on every interface.
	if !strings.Contains(args, "--admin=$(POD_IP):"+adminPort) || dig(env["POD_IP"], "valueFrom", "fieldRef", "fieldPath") != "status.podIP" {
		t.Errorf("args %q: want --admin=$(POD_IP):%s with POD_IP from status.podIP", args, adminPort)
	}
	if dig(kinds["PodDisruptionBudget"], "spec", "maxUnavailable") == nil && dig(kinds["PodDisruptionBudget"], "spec", "minAvailable") == nil {
		t.Error("the PodDisruptionBudget bounds nothing")
	}
	checkLearnerStateDeployment(t, kinds, spec)
}

// checkLearnerStateDeployment: the example keeps its learner state in a
// log; KEDA scales the Deployment on the consumer lag of the spec's group
// on its input topic, never beyond the partitions (no idle consumers), and
// never below two replicas (one ready to take the learner lease); the
// PodDisruptionBudget lets a drain evict at most one pod at a time, so the
// learner lease moves at most once per eviction.
func checkLearnerStateDeployment(t *testing.T, kinds map[string]map[string]any, spec *pipeline.Spec) {
	t.Helper()
	if spec.Topics.ModelState == "" {
		t.Error("the example spec has no topics.model_state: a restart forgets what it learned")
	}
	so := kinds["ScaledObject"]
	if dig(so, "apiVersion") != "keda.sh/v1alpha1" {
		t.Errorf("ScaledObject apiVersion %v, want keda.sh/v1alpha1", dig(so, "apiVersion"))
	}
	if got, want := dig(so, "spec", "scaleTargetRef", "name"), dig(kinds["Deployment"], "metadata", "name"); got != want {
		t.Errorf("the ScaledObject scales %v, not the Deployment %v", got, want)
	}
	trig := dig(so, "spec", "triggers", "0")
	if dig(trig, "type") != "kafka" {
		t.Fatalf("the ScaledObject's trigger is %v, want kafka (consumer lag)", dig(trig, "type"))
	}
	if got := dig(trig, "metadata", "consumerGroup"); got != spec.Kafka.Group {
		t.Errorf("the trigger watches group %v, the spec's is %s", got, spec.Kafka.Group)
	}
	if got := dig(trig, "metadata", "topic"); got != spec.Topics.Input {
		t.Errorf("the trigger watches topic %v, the spec's input is %s", got, spec.Topics.Input)
	}
	brokers, _ := dig(trig, "metadata", "bootstrapServers").(string)
	if brokers != strings.Join(spec.Kafka.Brokers, ",") {
		t.Errorf("the trigger's brokers %q differ from the spec's %v", brokers, spec.Kafka.Brokers)
	}
	if got := dig(trig, "metadata", "allowIdleConsumers"); got != "false" {
		t.Errorf("allowIdleConsumers %v: replicas beyond the partition count would sit idle", got)
	}
	minR, _ := dig(so, "spec", "minReplicaCount").(int)
	maxR, _ := dig(so, "spec", "maxReplicaCount").(int)
	if minR < 2 || maxR < minR {
		t.Errorf("replicas %d..%d: want at least two (a replica ready to take the learner lease) and max ≥ min", minR, maxR)
	}
	pdb := kinds["PodDisruptionBudget"]
	if got := dig(pdb, "spec", "maxUnavailable"); got != 1 {
		t.Errorf("the PodDisruptionBudget's maxUnavailable is %v, want 1: one eviction, one lease hand-over, at a time", got)
	}
	sel, _ := dig(pdb, "spec", "selector", "matchLabels").(map[string]any)
	pods, _ := dig(kinds["Deployment"], "spec", "template", "metadata", "labels").(map[string]any)
	for k, v := range sel {
		if pods[k] != v {
			t.Errorf("the PodDisruptionBudget selects %s=%v, which the Deployment's pods do not carry", k, v)
		}
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestComposeRunsTheExample(t *testing.T) {
	doc := yamlDocs(t, filepath.Join(repoRoot, "deploy/compose.yaml"))[0]
	for _, svc := range []string{"kafka", "redis", "driftline"} {
		if dig(doc, "services", svc) == nil {
			t.Fatalf("compose has no %s service", svc)
		}
	}
	if img, _ := dig(doc, "services", "kafka", "image").(string); !strings.HasPrefix(img, "apache/kafka:") {
		t.Errorf("kafka image %q, want apache/kafka", img)
	}
	if roles := dig(doc, "services", "kafka", "environment", "KAFKA_PROCESS_ROLES"); roles != "broker,controller" {
		t.Errorf("kafka is not a KRaft combined node: process roles %v", roles)
	}
	d := dig(doc, "services", "driftline")
	if cmd := toStrings(dig(d, "command")); len(cmd) == 0 || cmd[0] != "run" {
		t.Errorf("driftline service runs %v, want run", cmd)
	}
	spec, err := pipeline.LoadSpec(filepath.Join(repoRoot, "deploy/examples/payments-fraud.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{spec.Stages.Anonymize.HMACKeyEnv, spec.Stages.Anonymize.EncryptionKeyEnv, "DRIFTLINE_ADMIN_TOKEN"} {
		if dig(d, "environment", name) == nil {
			t.Errorf("driftline service does not set %s", name)
		}
	}
	// The admin port is published on the host's loopback only.
	if ports := toStrings(dig(d, "ports")); len(ports) != 1 || !strings.HasPrefix(ports[0], "127.0.0.1:") {
		t.Errorf("driftline publishes its admin port as %v, want on 127.0.0.1 only", ports)
	}
	topics := dig(doc, "services", "kafka-topics", "command", "0").(string)
	for _, tp := range []string{spec.Topics.Input, spec.Topics.Predictions, spec.Topics.DLQ, spec.Topics.Labels, spec.Topics.Alerts} {
		if !strings.Contains(topics, " "+tp+":") {
			t.Errorf("compose does not create topic %s", tp)
		}
	}
}

var (
	// A metric name in Go: a prometheus Opts' Name field, the first
	// argument of a small constructor helper (counter("...", help)), or a
	// collector's prometheus.NewDesc.
	metricLiteral = regexp.MustCompile(`(?:Name:\s*|\b(?:counter|gauge|histogram)[A-Za-z]*\(|\bNewDesc\(\s*)"(driftline_[a-z0-9_]+)"`)
	metricRef     = regexp.MustCompile(`\bdriftline_[a-z0-9_]+`)
)

// registeredMetrics greps the production Go sources for metric names.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	err := filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range metricLiteral.FindAllSubmatch(data, -1) {
			names[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range []string{"driftline_pipeline_events_in_total", "driftline_kafka_consumer_lag_records", "driftline_labels_joined_total", "driftline_model_prequential_accuracy_ratio", "driftline_drift_state", "driftline_rollout_phase"} {
		if !names[must] {
			t.Fatalf("the source grep did not find %s; it finds %v", must, names)
		}
	}
	return names
}

// unknownMetrics returns the driftline_* names text uses that are not
// registered (a histogram's _bucket, _sum and _count series count as its own).
func unknownMetrics(text string, registered map[string]bool) (unknown []string, used map[string]bool) {
	used = map[string]bool{}
	for _, ref := range metricRef.FindAllString(text, -1) {
		name := ref
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(ref, suf); ok && registered[base] {
				name = base
			}
		}
		if !registered[name] {
			unknown = append(unknown, ref)
		}
		used[name] = true
	}
	return unknown, used
}

func TestDashboardAndAlertsUseRegisteredMetrics(t *testing.T) {
	registered := registeredMetrics(t)
	dashData, err := os.ReadFile(filepath.Join(repoRoot, "deploy/grafana/driftline.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Type, Title string
			Targets     []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(dashData, &dash); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	unknown, used := unknownMetrics(string(dashData), registered)
	for _, u := range unknown {
		t.Errorf("dashboard uses %s, which no Go source registers", u)
	}
	// The dashboard covers every metric the code registers.
	for name := range registered {
		if !used[name] {
			t.Errorf("dashboard has no panel for %s", name)
		}
	}

	var rules struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert, Expr string
				For         string
				Labels      map[string]string
			}
		}
	}
	alertData, err := os.ReadFile(filepath.Join(repoRoot, "deploy/prometheus/alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(alertData, &rules); err != nil {
		t.Fatal(err)
	}
	alerted := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" {
				t.Errorf("group %s: rule %+v lacks an alert name, expr or severity", g.Name, r)
			}
			exprs = append(exprs, r.Expr)
			u, used := unknownMetrics(r.Expr, registered)
			for _, name := range u {
				t.Errorf("alert %s uses %s, which no Go source registers", r.Alert, name)
			}
			for n := range used {
				alerted[n] = true
			}
		}
	}
	for _, n := range []string{"driftline_pipeline_events_dlq_total", "driftline_kafka_consumer_lag_records", "driftline_drift_state", "driftline_drift_alerts_total",
		"driftline_model_prequential_accuracy_ratio", "driftline_rollout_decisions_total", "driftline_rollout_canary_percent"} {
		if !alerted[n] {
			t.Errorf("no alert rule watches %s", n)
		}
	}
	for _, e := range exprs {
		if strings.Count(e, "(") != strings.Count(e, ")") || strings.Count(e, "{") != strings.Count(e, "}") || strings.Count(e, "[") != strings.Count(e, "]") {
			t.Errorf("unbalanced brackets in %q", e)
		}
	}

	// The checker itself flags a name the code does not register.
	if u, _ := unknownMetrics("rate(driftline_pipeline_events_lost_total[5m]) + driftline_pipeline_stage_batch_duration_seconds_bucket", registered); len(u) != 1 || u[0] != "driftline_pipeline_events_lost_total" {
		t.Errorf("checker reported %v for a made-up metric", u)
	}
}
