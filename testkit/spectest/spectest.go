// Package spectest checks the positioned errors of pipeline spec loaders:
// every error is a *pipeline.SpecError that names the file, the line and
// the field path.
package spectest

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/driftline/driftline/pipeline"
)

// LineOf is the 1-based line of the first line of text containing s.
func LineOf(t testing.TB, text, s string) int {
	t.Helper()
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	t.Fatalf("spectest: %q not in spec", s)
	return 0
}

// Errors flattens a joined error into its *SpecErrors, failing t on any
// other kind of error.
func Errors(t testing.TB, err error) []*pipeline.SpecError {
	t.Helper()
	var out []*pipeline.SpecError
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var se *pipeline.SpecError
		if !errors.As(err, &se) {
			t.Errorf("error %v (%T) is not a *SpecError", err, err)
			return
		}
		out = append(out, se)
	}
	walk(err)
	return out
}

// CheckError parses text as file with parse and wants an error for field
// on the line that contains at, whose message contains msg, printed as
// "file:line: field: …".
func CheckError(t testing.TB, parse func(file string, data []byte) error, file, text, field, at, msg string) {
	t.Helper()
	err := parse(file, []byte(text))
	if err == nil {
		t.Fatal("accepted")
	}
	var hit *pipeline.SpecError
	for _, e := range Errors(t, err) {
		if e.Field == field {
			hit = e
		}
	}
	if hit == nil {
		t.Fatalf("no error names field %s: %v", field, err)
	}
	if hit.File != file {
		t.Errorf("file %q, want %q", hit.File, file)
	}
	if want := LineOf(t, text, at); hit.Line != want {
		t.Errorf("line %d, want %d (%q): %v", hit.Line, want, at, hit)
	}
	if !strings.Contains(hit.Msg, msg) {
		t.Errorf("message %q does not say %q", hit.Msg, msg)
	}
	if want := file + ":" + strconv.Itoa(hit.Line) + ": " + field + ": "; !strings.HasPrefix(hit.Error(), want) {
		t.Errorf("Error() = %q, want it to start %q", hit.Error(), want)
	}
}
