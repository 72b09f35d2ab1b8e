//go:build integration

package main

// The fault suite's harness (task test:chaos): `driftline run` as a real
// process, built once per package, on real brokers and redis-servers, with
// its admin address known so that the tests watch /readyz and /metrics.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/driftline/driftline/internal/app"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/streams"
	"github.com/driftline/driftline/testkit/streams/feed"
)

// TestMain stops the package's shared broker (kafkatest.SharedKafka) and
// removes the driftline binary built for the fault suite.
func TestMain(m *testing.M) {
	code := kafkatest.Main(m)
	if chaosBin.dir != "" {
		os.RemoveAll(chaosBin.dir)
	}
	os.Exit(code)
}

// chaosBin is the driftline binary the fault suite runs, built once.
var chaosBin struct {
	once      sync.Once
	dir, path string
	err       error
}

// driftlineBinary builds cmd/driftline once per test binary.
func driftlineBinary(t *testing.T) string {
	t.Helper()
	chaosBin.once.Do(func() {
		if chaosBin.dir, chaosBin.err = os.MkdirTemp("", "driftline-chaos-"); chaosBin.err != nil {
			return
		}
		chaosBin.path = filepath.Join(chaosBin.dir, "driftline")
		out, err := exec.Command("go", "build", "-o", chaosBin.path, ".").CombinedOutput()
		if err != nil {
			chaosBin.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if chaosBin.err != nil {
		t.Fatal(chaosBin.err)
	}
	return chaosBin.path
}

// chaosSpec writes the demo spec (every plane: data, labels, drift alerts,
// rollout governance, audit) for broker and rds, with topics, group and
// key prefix of its own (named after the test, so that tests share a
// broker), creates the topics, and returns the spec and its path. edit,
// when set, changes the YAML text first.
func chaosSpec(t *testing.T, broker *kafkatest.Broker, rds *redistest.Redis, edit func(string) string) (*pipeline.Spec, string) {
	t.Helper()
	t.Setenv("DRIFTLINE_DEMO_HMAC_KEY", "integration-hmac-key-0123456789abcdef")
	t.Setenv("DRIFTLINE_DEMO_AES_KEY", strings.Repeat("ab", 32))
	p := strings.ToLower(strings.TrimPrefix(t.Name(), "Test")) + "."
	text := string(app.DemoSpec)
	for _, r := range [][2]string{
		{"  input: events\n", "  input: " + p + "events\n"},
		{"  predictions: predictions\n", "  predictions: " + p + "predictions\n"},
		{"  dlq: events.dlq\n", "  dlq: " + p + "events.dlq\n"},
		{"  labels: labels\n", "  labels: " + p + "labels\n"},
		{"  alerts: alerts\n", "  alerts: " + p + "alerts\n"},
		{"  audit: audit\n", "  audit: " + p + "audit\n"},
		{"  shadow_topic: predictions.shadow\n", "  shadow_topic: " + p + "predictions.shadow\n"},
		{"  group: driftline-demo\n", "  group: " + p + "group\n  brokers: [\"" + broker.Addr + "\"]\n"},
		{"name: demo\n", "name: demo\nredis:\n  addr: \"" + rds.Addr + "\"\n"},
	} {
		if !strings.Contains(text, r[0]) {
			t.Fatalf("demo.yaml no longer has %q", r[0])
		}
		text = strings.Replace(text, r[0], r[1], 1)
	}
	if edit != nil {
		text = edit(text)
	}
	path := filepath.Join(t.TempDir(), "spec.yaml")
	writeFile(t, path, text)
	spec, err := pipeline.LoadSpec(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range app.Topics(spec) {
		broker.CreateTopic(t, topic, 4)
	}
	return spec, path
}

// chaosProcess is one `driftline run`: its admin address, its log, and
// whether it exited (which no fault may cause).
type chaosProcess struct {
	cmd     *exec.Cmd
	admin   string
	logPath string
	exited  chan struct{}
	waitErr error
}

// startChaosRun starts `driftline run` on specPath with a known admin
// address; its log is printed when the test fails.
func startChaosRun(t *testing.T, specPath string, env ...string) *chaosProcess {
	t.Helper()
	bin := driftlineBinary(t)
	p := &chaosProcess{admin: freeAddr(t), logPath: filepath.Join(t.TempDir(), "run.log"), exited: make(chan struct{})}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, "run", "--spec", specPath, "--admin", p.admin)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.waitErr = p.cmd.Wait(); logFile.Close(); close(p.exited) }()
	t.Cleanup(func() {
		if p.alive() && t.Failed() {
			// A goroutine dump in the log tells where a stuck run waits.
			_ = p.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-p.exited:
			case <-time.After(5 * time.Second):
			}
		}
		if p.alive() {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		b, _ := os.ReadFile(p.logPath)
		if t.Failed() {
			logged, dump, _ := strings.Cut(string(b), "SIGQUIT: quit")
			t.Logf("driftline run log, before the goroutine dump (all of it: $DRIFTLINE_CHAOS_LOGS keeps it):\n%s", tail(logged, 8000))
			if dump != "" {
				t.Logf("where driftline's goroutines wait:\n%s", tail(driftlineFrames(dump), 8000))
			}
		}
		if dir := os.Getenv("DRIFTLINE_CHAOS_LOGS"); dir != "" { // keep the whole log, e.g. for RELIABILITY.md
			_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d.log", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().Unix())), b, 0o644)
		}
	})
	return p
}

// driftlineFrames shortens a goroutine dump to each goroutine's header and
// its frames in driftline's own packages, dropping goroutines with none.
func driftlineFrames(dump string) string {
	var out strings.Builder
	for _, g := range strings.Split(dump, "\n\ngoroutine ") {
		header, body, _ := strings.Cut(g, "\n")
		var frames []string
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "github.com/driftline/driftline/") {
				frames = append(frames, "  "+line)
			}
		}
		if len(frames) > 0 {
			out.WriteString("goroutine " + header + "\n" + strings.Join(frames, "\n") + "\n")
		}
	}
	return out.String()
}

func (p *chaosProcess) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// mustBeAlive fails the test when the process exited: no fault may make
// it exit.
func (p *chaosProcess) mustBeAlive(t *testing.T, during string) {
	t.Helper()
	if !p.alive() {
		t.Fatalf("driftline run exited during %s: %v", during, p.waitErr)
	}
}

// stop sends SIGTERM and waits for a clean exit (bounded).
func (p *chaosProcess) stop(t *testing.T) {
	t.Helper()
	p.mustBeAlive(t, "the test")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(time.Minute):
		t.Fatal("driftline run did not exit within 1 minute of SIGTERM")
	}
	if p.waitErr != nil {
		t.Fatalf("driftline run did not exit cleanly on SIGTERM: %v", p.waitErr)
	}
}

// get answers GET path on the admin address with headers (a bounded
// request): the status and body, or status 0 when it failed.
func (p *chaosProcess) get(path string, headers ...string) (int, string) {
	req, err := http.NewRequest(http.MethodGet, "http://"+p.admin+path, nil)
	if err != nil {
		return 0, err.Error()
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

func (p *chaosProcess) ready() bool {
	code, _ := p.get("/readyz")
	return code == http.StatusOK
}

// metric sums the samples of the metric name whose labels contain match
// (e.g. `dependency="redis"`), from /metrics; -1 when none.
func (p *chaosProcess) metric(name, match string) float64 {
	code, body := p.get("/metrics")
	if code != http.StatusOK {
		return -1
	}
	sum, found := 0.0, false
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || !strings.Contains(line, match) {
			continue
		}
		rest := strings.TrimPrefix(line, name)
		if rest != "" && rest[0] != '{' && rest[0] != ' ' {
			continue // another metric with this prefix
		}
		if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
			sum += v
			found = true
		}
	}
	if !found {
		return -1
	}
	return sum
}

// waitUntil polls cond every 100 ms until it holds, the process exits or
// limit passes (failing the test then), and returns how long it took.
func waitUntil(t *testing.T, p *chaosProcess, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		p.mustBeAlive(t, "the wait for "+what)
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

// chaosLoad writes the fault suite's stream: events at rate rows/s with
// 1% malformed rows and 1% duplicates, and their labels 300 ms later.
type chaosLoad struct {
	stats feed.Stats
	done  chan error
}

func startChaosLoad(t *testing.T, ctx context.Context, broker *kafkatest.Broker, spec *pipeline.Spec, events int64, rate float64) *chaosLoad {
	t.Helper()
	l := &chaosLoad{done: make(chan error, 1)}
	cfg := feed.Config{
		Topic: spec.Topics.Input, LabelsTopic: spec.Topics.Labels, Events: events, Rate: rate,
		MalformedRate: 0.01, DuplicateRate: 0.01, LabelDelay: 300 * time.Millisecond,
		Stream: streams.Config{Concept: streams.ConceptSEA, Seed: 11},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cl := newTestProducer(t, broker.Addr, 5*time.Millisecond)
	go func() { l.done <- feed.Produce(ctx, cl, cfg, &l.stats) }()
	return l
}

// wait waits for the load to be written.
func (l *chaosLoad) wait(t *testing.T, limit time.Duration) {
	t.Helper()
	select {
	case err := <-l.done:
		if err != nil {
			t.Fatalf("produce: %v", err)
		}
	case <-time.After(limit):
		t.Fatalf("the load was not written within %s", limit)
	}
}

// outputCount sums the end offsets of the predictions and DLQ topics
// (outputsWritten), failing t on an error.
func outputCount(t *testing.T, ctx context.Context, adm *kadm.Client, spec *pipeline.Spec) int64 {
	t.Helper()
	n, err := outputsWritten(ctx, adm, spec, adm.ListEndOffsets)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// finish waits until the group committed the whole input, stops the
// process with SIGTERM, reads the outputs back and checks that nothing
// was lost; it returns the check (duplicates are the caller's to judge).
func finish(t *testing.T, ctx context.Context, broker *kafkatest.Broker, p *chaosProcess, spec *pipeline.Spec, load *chaosLoad, committed bool) feed.Check {
	t.Helper()
	adm := kadm.NewClient(broker.Client(t))
	waitUntil(t, p, 3*time.Minute, "the group to commit the whole input", func() bool { return committedAll(ctx, adm, spec) })
	p.stop(t)
	read := feed.ReadBack
	if committed {
		read = feed.ReadBackCommitted
	}
	res, err := read(ctx, broker.ClientConfig("readback"), spec, &load.stats)
	if err != nil {
		t.Fatal(err)
	}
	if res.Lost != 0 {
		t.Errorf("lost %d events (want 0): every valid event needs its prediction, every malformed row its DLQ record", res.Lost)
	}
	if committed && (res.DuplicatePredictions != 0 || res.DuplicateDLQ != 0) {
		explainRepeats(t, ctx, broker, spec)
	}
	if res.PIILeaks != 0 || res.DLQWithoutReason != 0 {
		t.Errorf("%d records with plaintext PII, %d DLQ records without reason headers", res.PIILeaks, res.DLQWithoutReason)
	}
	return res
}
