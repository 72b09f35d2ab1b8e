package app

import (
	"strings"
	"testing"
)

// demoSpecWithoutRollout is the demo spec without its rollout block (the
// last block of demo.yaml), for tests that add their own or use a model
// that cannot roll out (model.onnx).
func demoSpecWithoutRollout(t testing.TB) string {
	t.Helper()
	text := string(DemoSpec)
	i := strings.Index(text, "\nrollout:\n")
	if i < 0 {
		t.Fatal("demo.yaml has no rollout block")
	}
	for _, line := range strings.Split(text[i+len("\nrollout:\n"):], "\n") {
		if line != "" && line[0] != ' ' && line[0] != '#' {
			t.Fatalf("demo.yaml: rollout is no longer its last block (%q follows it)", line)
		}
	}
	return text[:i+1]
}
