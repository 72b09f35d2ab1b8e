//go:build integration

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
)

// readmeBlock is a shell block of the README with its walk mark.
type readmeBlock struct {
	line int    // the line of the opening fence
	mark string // cluster, local or skip
	why  string // a skip's reason
	text string
}

var walkMark = regexp.MustCompile(`^<!-- walk: (cluster|local|skip: (.+)) -->$`)

// readmeBlocks returns the README's ```sh blocks, each with the walk mark
// on the line before it; it fails t for a block without one.
func readmeBlocks(t *testing.T, readme string) []readmeBlock {
	t.Helper()
	lines := strings.Split(readme, "\n")
	var out []readmeBlock
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "```sh" {
			continue
		}
		b := readmeBlock{line: i + 1}
		if i == 0 {
			t.Fatalf("README.md:%d: a shell block without a walk mark", b.line)
		}
		m := walkMark.FindStringSubmatch(strings.TrimSpace(lines[i-1]))
		if m == nil {
			t.Errorf("README.md:%d: the shell block is not marked <!-- walk: cluster|local|skip: why --> on the line before", b.line)
			continue
		}
		b.mark, b.why = m[1], m[2]
		if b.why != "" {
			b.mark = "skip"
		}
		j := i + 1
		for ; j < len(lines) && strings.TrimSpace(lines[j]) != "```"; j++ {
		}
		b.text = strings.Join(lines[i+1:j], "\n")
		out = append(out, b)
		i = j
	}
	return out
}

// TestREADMEWalk runs the README's shell blocks marked cluster and local
// as written, in order, in one bash (set -euo pipefail), from the
// repository's root, with $KAFKA and $REDIS pointing at a real Kafka
// broker and a real redis-server: go build, validate-spec, run (creating
// the topics), produce --spec, the models and audit commands, eval. Every
// other shell block must say why it is skipped.
func TestREADMEWalk(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	walked := 0
	for _, b := range readmeBlocks(t, string(readme)) {
		if b.mark == "skip" {
			t.Logf("README.md:%d: skipped: %s", b.line, b.why)
			continue
		}
		walked++
		script.WriteString("# README.md:" + strconv.Itoa(b.line) + "\n" + b.text + "\n")
	}
	if walked < 2 {
		t.Fatalf("only %d shell blocks are marked cluster or local; the walk needs the cluster walk and eval", walked)
	}
	broker := kafkatest.StartKafka(t)
	rdb := redistest.StartRedis(t)

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir = root
	env := []string{"KAFKA=" + broker.Addr, "REDIS=" + rdb.Addr}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DRIFTLINE_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	// The walk's `run &` is killed with the whole group, whatever happens.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Start()
	if err == nil {
		t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
		err = cmd.Wait()
	}
	t.Logf("walk took %s", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("the README walk failed: %v\n%s", err, tail(out.String(), 6000))
	}
	got := out.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`payments-fraud\.yaml: ok \(pipeline "payments-fraud"`),
		regexp.MustCompile(`produced 20000 rows to payments\.events \(\d+ valid, \d+ malformed, \d+ duplicates\) and \d+ labels to payments\.chargebacks`),
		regexp.MustCompile(`(?m)^driftline_pipeline_events_in_total 20000$`),
		regexp.MustCompile(`(?m)^payments-fraud\s+1\s+1\s+1\s`),
		regexp.MustCompile(`rollout: none in progress`),
		regexp.MustCompile(`(?m)^dl_[0-9a-f]{64}$`),
		regexp.MustCompile(`wrote /tmp/payments-fraud\.snapshot \(\d+ bytes\): snapshot of model payments-fraud version 1`),
		regexp.MustCompile(`wrote /tmp/payments-fraud\.onnx \(\d+ bytes\): model "payments-fraud" version "1"`),
		regexp.MustCompile(`what=rollout\.resume model=payments-fraud .*why="freeze over"`),
		regexp.MustCompile(`(?s)model     hat grace_period=200\n.*accuracy  0\.\d+.*model     arf`),
	} {
		if !want.MatchString(got) {
			t.Errorf("the walk's output lacks %s", want)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("walk output:\n%s", tail(got, 6000))
	}
}
