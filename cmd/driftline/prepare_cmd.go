package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/driftline/driftline/internal/app"
)

func cmdPrepare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("prepare", "--spec FILE --in FILE", `Run a spec's preparation stages (those of run: decode, validate, dedupe,
the free-text stages, anonymize, featurize) over JSON events, one per line
(--in - reads stdin), and print each row's output fields and features or its
DLQ stage and reason. No Kafka; an in-process Redis; key variables that are
unset get a random key for the run. Test a spec before deploying it.`, stderr)
	specPath, inPath := fs.String("spec", "", "pipeline spec file"), fs.String("in", "", "JSONL input file, or -")
	jsonOut, stats := fs.Bool("json", false, "one JSON object per row"), fs.Bool("stats", false, "print a summary at the end")
	if err := parseFlags(fs, args); err != nil {
		return err
	} else if *specPath == "" || *inPath == "" {
		fs.Usage()
		return errUsage
	}
	spec, err := app.LoadSpec(*specPath)
	if err != nil {
		return err
	}
	in := io.Reader(os.Stdin)
	if *inPath != "-" {
		f, err := os.Open(*inPath)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	enc := json.NewEncoder(stdout)
	show := func(v any) error {
		if *jsonOut {
			return enc.Encode(v)
		}
		_, err := fmt.Fprintln(stdout, v)
		return err
	}
	st, err := app.Prepare(ctx, spec, in, func(r app.PreparedRow) error { return show(r) })
	if err == nil && *stats {
		err = show(st)
	}
	return err
}
