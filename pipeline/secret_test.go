package pipeline_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"

	"github.com/driftline/driftline/pipeline"
)

const secretValue = "hunter2-d41d8cd9"

// holder has a Secret in an exported and an unexported field, and behind a pointer.
type holder struct {
	Password pipeline.Secret
	hidden   pipeline.Secret
	Ptr      *pipeline.Secret
	List     []pipeline.Secret
	Map      map[string]pipeline.Secret
}

func newHolder() holder {
	s := pipeline.NewSecret(secretValue)
	return holder{Password: s, hidden: s, Ptr: &s, List: []pipeline.Secret{s}, Map: map[string]pipeline.Secret{"k": s}}
}

func TestSecretNeverFormatsItsValue(t *testing.T) {
	s := pipeline.NewSecret(secretValue)
	h := newHolder()
	verbs := []string{"%s", "%v", "%+v", "%#v", "%q", "%x", "%X", "%d", "%t", "%p", "%T", "%10s", "%-20v", "%.3s", "%#q", "%U", "%c", "%e", "%08b"}
	for _, verb := range verbs {
		for name, arg := range map[string]any{"secret": s, "pointer": &s, "holder": h, "pointer to holder": &h} {
			got := fmt.Sprintf(verb, arg)
			if strings.Contains(got, secretValue) || strings.Contains(got, fmt.Sprintf("%x", secretValue)) {
				t.Errorf("Sprintf(%q, %s) = %q shows the secret", verb, name, got)
			}
		}
	}
	if got := fmt.Sprint(s); got != "[redacted]" {
		t.Errorf("Sprint = %q; want [redacted]", got)
	}
	if got := fmt.Sprintf("%q", s); got != `"[redacted]"` {
		t.Errorf("%%q = %s; want \"[redacted]\"", got)
	}
	if got := fmt.Sprintf("%#v", s); got != `pipeline.Secret("[redacted]")` {
		t.Errorf("%%#v = %s", got)
	}
	err := fmt.Errorf("connect with %v: %w", s, errors.New("refused"))
	if strings.Contains(err.Error(), secretValue) {
		t.Errorf("error %q shows the secret", err)
	}
	if s.Reveal() != secretValue || s.IsZero() {
		t.Errorf("Reveal = %q, IsZero = %v; want the value and false", s.Reveal(), s.IsZero())
	}
	var zero pipeline.Secret
	if !zero.IsZero() || zero.Reveal() != "" || fmt.Sprint(zero) != "" || !pipeline.NewSecret("").IsZero() {
		t.Errorf("the zero Secret: IsZero %v, Reveal %q, Sprint %q", zero.IsZero(), zero.Reveal(), fmt.Sprint(zero))
	}
}

func TestSecretEncodersNeverShowItsValue(t *testing.T) {
	h := newHolder()
	j, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(j), secretValue) || !strings.Contains(string(j), `"Password":"[redacted]"`) {
		t.Errorf("JSON %s", j)
	}
	y, err := yaml.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(y), secretValue) || !strings.Contains(string(y), "password: '[redacted]'") {
		t.Errorf("YAML %s", y)
	}
	if j, _ := json.Marshal(struct{ P pipeline.Secret }{}); string(j) != `{"P":""}` {
		t.Errorf("JSON of the zero Secret: %s", j)
	}
}

func TestSecretNeverReachesSlog(t *testing.T) {
	s := pipeline.NewSecret(secretValue)
	h := newHolder()
	for name, handler := range map[string]func(*bytes.Buffer) slog.Handler{
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var buf bytes.Buffer
		log := slog.New(handler(&buf))
		log.Info("connect", "password", s, "ptr", &s, "cfg", h, slog.Group("sasl", "pw", s), slog.Any("any", s))
		log.With("pw", s).Error("failed", "err", fmt.Errorf("auth %v", s))
		if strings.Contains(buf.String(), secretValue) {
			t.Errorf("%s handler wrote the secret: %s", name, buf.String())
		}
		if !strings.Contains(buf.String(), "[redacted]") {
			t.Errorf("%s handler wrote no [redacted]: %s", name, buf.String())
		}
	}
}

func TestSecretRefResolve(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte("  "+secretValue+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DRIFTLINE_TEST_PW", " "+secretValue+"\t")
	for _, ref := range []pipeline.SecretRef{{Env: "DRIFTLINE_TEST_PW"}, {File: file}} {
		s, err := ref.Resolve()
		if err != nil || s.Reveal() != secretValue {
			t.Errorf("%+v resolves to %q, %v; want the trimmed value", ref, s.Reveal(), err)
		}
	}
	if s, err := (pipeline.SecretRef{}).Resolve(); err != nil || !s.IsZero() {
		t.Errorf("the zero SecretRef resolves to %v, %v; want the zero Secret", s, err)
	}
}

func TestSecretRefResolveErrorsNameTheSourceNotTheValue(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withValue := filepath.Join(dir, "pw")
	if err := os.WriteFile(withValue, []byte(secretValue), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DRIFTLINE_TEST_EMPTY", "  ")
	t.Setenv("DRIFTLINE_TEST_SET", secretValue)
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		ref  pipeline.SecretRef
		want []string
	}{
		{pipeline.SecretRef{Env: "DRIFTLINE_TEST_UNSET_VAR"}, []string{"env var DRIFTLINE_TEST_UNSET_VAR is empty or unset"}},
		{pipeline.SecretRef{Env: "DRIFTLINE_TEST_EMPTY"}, []string{"env var DRIFTLINE_TEST_EMPTY is empty or unset"}},
		{pipeline.SecretRef{File: missing}, []string{"read secret file " + missing + ": no such file or directory"}},
		{pipeline.SecretRef{File: dir}, []string{"read secret file " + dir + ": is a directory"}},
		{pipeline.SecretRef{File: empty}, []string{"secret file " + empty + " is empty"}},
		{pipeline.SecretRef{Env: "DRIFTLINE_TEST_SET", File: withValue}, []string{"DRIFTLINE_TEST_SET", withValue, "set one"}},
	} {
		_, err := tc.ref.Resolve()
		if err == nil {
			t.Errorf("%+v resolved; want an error", tc.ref)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error %q does not say %q", tc.ref, err, w)
			}
		}
		if strings.Contains(err.Error(), secretValue) {
			t.Errorf("%+v: error %q shows the secret", tc.ref, err)
		}
		if strings.Count(err.Error(), dir) > 1 {
			t.Errorf("%+v: error %q names the path twice", tc.ref, err)
		}
	}
}
