package main

import (
	"context"
	"fmt"
	"io"

	"github.com/driftline/driftline/internal/app"
)

func cmdValidateSpec(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("validate-spec", "FILE", "Check a pipeline spec: YAML syntax, unknown keys, types, the rules\nbetween fields and the blocks other packages own (model.kind and params,\nrollout.gate), and what drift.watch names (features, categories,\nprediction, error, or a numeric, categorical or text-token field of\nstages). Every problem in the file is reported, one a line, as\nFILE:LINE: FIELD: message.", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	spec, err := app.LoadSpec(fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (pipeline %q, %d fields, input %s → predictions %s)\n",
		fs.Arg(0), spec.Name, len(spec.Schema.Fields), spec.Topics.Input, spec.Topics.Predictions)
	return nil
}
