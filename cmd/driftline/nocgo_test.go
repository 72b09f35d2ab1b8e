package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftline/driftline/testkit/redistest"
)

// TestBuildWithoutCgo: `CGO_ENABLED=0 go build ./cmd/driftline` works, the
// binary runs, and a spec with a bring-your-own ONNX model fails at start
// with an error that names model.onnx and says the binary has no ONNX
// Runtime, rather than falling back or crashing.
func TestBuildWithoutCgo(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "driftline-nocgo")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "driftline ") {
		t.Fatalf("version: %v\n%s", err, out)
	}
	rds := redistest.StartMiniredis(t)
	spec := strings.Replace(demoSpecWithoutRollout(), "model:\n",
		"model:\n  onnx: {path: user.onnx, inputs: [{input: x, features: [f0]}]}\n", 1)
	spec = strings.Replace(spec, "kafka:\n", "kafka:\n  brokers: [127.0.0.1:1]\n", 1)
	spec = strings.Replace(spec, "name: demo\n", fmt.Sprintf("name: demo\nredis:\n  addr: %q\n", rds.Addr), 1)
	specPath := filepath.Join(t.TempDir(), "byo.yaml")
	writeFile(t, specPath, spec)
	run := exec.Command(bin, "run", "--spec", specPath)
	run.Env = append(os.Environ(), "DRIFTLINE_DEMO_HMAC_KEY="+strings.Repeat("ab", 32), "DRIFTLINE_DEMO_AES_KEY="+strings.Repeat("cd", 32))
	out, err := run.CombinedOutput()
	if err == nil {
		t.Fatalf("run of an ONNX spec without ONNX Runtime succeeded:\n%s", out)
	}
	if msg := string(out); !strings.Contains(msg, "model.onnx:") || !strings.Contains(msg, "built without ONNX Runtime") {
		t.Fatalf("run failed without naming model.onnx and the missing ONNX Runtime:\n%s", msg)
	}
	// A spec with a text model (stages.text.model) fails at start too,
	// naming the field; here through prepare, which needs no Kafka.
	textSpec := filepath.Join(t.TempDir(), "text.yaml")
	writeFile(t, textSpec, `name: text
topics: {input: in, predictions: out, dlq: dlq}
schema:
  id_field: id
  fields: [{name: id, type: string, required: true}, {name: msg, type: string}, {name: p0, type: float}, {name: p1, type: float}]
stages:
  text:
    model: {field: msg, path: m.onnx, tokenizer: tokenizer.json, task: sequence_classification, outputs: [p0, p1]}
  featurize: {numeric: [p0, p1]}
model: {name: m}
`)
	out, err = exec.Command(bin, "prepare", "--spec", textSpec, "--in", "-").CombinedOutput()
	if msg := string(out); err == nil || !strings.Contains(msg, "stages.text.model:") || !strings.Contains(msg, "built without ONNX Runtime") {
		t.Fatalf("prepare of a text-model spec without ONNX Runtime: %v\n%s", err, msg)
	}
}
