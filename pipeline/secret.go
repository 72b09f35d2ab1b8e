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
// file, never the value. The zero SecretRef resolves to the zero Secret
// without error.
func (r SecretRef) Resolve() (Secret, error) {
	switch {
	case r.Env != "" && r.File != "":
		return Secret{}, fmt.Errorf("both env var %s and file %s are named; set one", r.Env, r.File)
	case r.Env != "":
		v := strings.TrimSpace(os.Getenv(r.Env))
		if v == "" {
			return Secret{}, fmt.Errorf("env var %s is empty or unset", r.Env)
		}
		return NewSecret(v), nil
	case r.File != "":
		data, err := os.ReadFile(r.File)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err // the path is named once, below
			}
			return Secret{}, fmt.Errorf("read secret file %s: %w", r.File, err)
		}
		v := strings.TrimSpace(string(data))
		if v == "" {
			return Secret{}, fmt.Errorf("secret file %s is empty", r.File)
		}
		return NewSecret(v), nil
	}
	return Secret{}, nil
}

// Secret is a resolved secret: a password, a token or a key. It formats as
// "[redacted]" with every fmt verb, in JSON, YAML and other text encoders,
// and in slog, so that a secret that reaches a log line, an error or an API
// response by accident shows nothing. Reveal returns the value for the one
// place that needs it.
//
// The value sits behind a pointer, so that even where fmt cannot call
// Secret's methods — a Secret in an unexported struct field printed with
// %+v, or a bad verb such as %p — it prints an address, never the value.
// The zero Secret is no secret. Secrets are compared with Reveal, not ==.
type Secret struct{ v *string }

// NewSecret wraps v; an empty v gives the zero Secret.
func NewSecret(v string) Secret {
	if v == "" {
		return Secret{}
	}
	return Secret{v: &v}
}

const redacted = "[redacted]"

// Reveal returns the secret's value ("" for the zero Secret).
func (s Secret) Reveal() string {
	if s.v == nil {
		return ""
	}
	return *s.v
}

// IsZero reports whether s holds no secret.
func (s Secret) IsZero() bool { return s.v == nil }

// String implements fmt.Stringer: "[redacted]", or "" for the zero Secret.
func (s Secret) String() string {
	if s.IsZero() {
		return ""
	}
	return redacted
}

// GoString implements fmt.GoStringer, for %#v.
func (s Secret) GoString() string { return `pipeline.Secret("` + s.String() + `")` }

// Format implements fmt.Formatter so that no verb (%s, %v, %q, %x, %d…)
// prints the value.
func (s Secret) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'q':
		fmt.Fprintf(f, "%q", s.String())
	case verb == 'v' && f.Flag('#'):
		fmt.Fprint(f, s.GoString())
	default:
		fmt.Fprint(f, s.String())
	}
}

// MarshalJSON writes "[redacted]" ("" for the zero Secret).
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// MarshalText writes "[redacted]" (YAML and other text encoders).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }
