package pipeline

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// SecretRef names where a secret lives — an environment variable or a file —
// so that a spec never holds a secret in plain text. At most one of Env and
// File is set; the zero SecretRef names no secret.
type SecretRef struct {
	// Env is the name of an environment variable that holds the secret.
	Env string
	// File is the path of a file that holds the secret (surrounding
	// whitespace is trimmed).
	File string
}

// IsSet reports whether r names a secret.
func (r SecretRef) IsSet() bool { return r.Env != "" || r.File != "" }

// Resolve reads the secret r names. Its errors name the variable or the
// file, never the value. The zero SecretRef resolves to "" without error.
func (r SecretRef) Resolve() (Secret, error) {
	switch {
	case r.Env != "" && r.File != "":
		return "", errors.New("both an env var and a file are named; set one")
	case r.Env != "":
		v := strings.TrimSpace(os.Getenv(r.Env))
		if v == "" {
			return "", fmt.Errorf("env var %s is empty or unset", r.Env)
		}
		return Secret(v), nil
	case r.File != "":
		data, err := os.ReadFile(r.File)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				return "", fmt.Errorf("read secret file %s: %w", r.File, pe.Err)
			}
			return "", fmt.Errorf("read secret file %s: %w", r.File, err)
		}
		v := strings.TrimSpace(string(data))
		if v == "" {
			return "", fmt.Errorf("secret file %s is empty", r.File)
		}
		return Secret(v), nil
	}
	return "", nil
}

// Secret is a resolved secret: a password, a token or a key. It formats as
// "[redacted]" with every fmt verb, in JSON and YAML, and in slog, so that a
// secret that reaches a log line, an error or an API response by accident
// shows nothing. Reveal returns the value for the one place that needs it.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer: "[redacted]", or "" for an empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString implements fmt.GoStringer, for %#v.
func (s Secret) GoString() string { return `pipeline.Secret("` + s.String() + `")` }

// Format implements fmt.Formatter so that no verb (%s, %v, %q, %x, %d…)
// prints the value.
func (s Secret) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		fmt.Fprintf(f, "%q", s.String())
	case 'v':
		if f.Flag('#') {
			fmt.Fprint(f, s.GoString())
			return
		}
		fmt.Fprint(f, s.String())
	default:
		fmt.Fprint(f, s.String())
	}
}

// MarshalJSON writes "[redacted]".
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// MarshalText writes "[redacted]" (YAML and other text encoders).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }
