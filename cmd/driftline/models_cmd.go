package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/driftline/driftline/internal/app"
)

const modelsUsage = `Usage: driftline models <subcommand> [flags]

Work with the models of a pipeline.

Subcommands:
  export   write a learner snapshot as an ONNX model that ONNX Runtime scores
  list     list registered models and their aliases (admin API, viewer)
  show     show a model's versions, lineage, aliases, pause flag, policy (viewer)
  promote  make a version the champion, or hand it to the rollout gate as
           --alias canary or shadow, by compare-and-set (operator)
  rollback move the champion back to the previous one or --to a version (operator)
  pause    pause a model's rollout; resume undoes it (operator)
  abort    withdraw the candidate under rollout (operator)
  retrain  request a retrain of a model (operator)
  download write a version's learner snapshot or ONNX model to a file (viewer)
  token    create, list or revoke admin API tokens (admin)

Run "driftline models <subcommand> --help" for a subcommand's flags.
`

func cmdModels(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, modelsUsage)
		return errUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stderr, modelsUsage)
		return flag.ErrHelp
	case "export":
		return cmdModelsExport(ctx, args[1:], stdout, stderr)
	}
	if sub, ok := modelsAPISubcommands[args[0]]; ok { // models_cli.go
		return sub(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "driftline models: unknown subcommand %q\n\n%s", args[0], modelsUsage)
	return errUsage
}

const modelsExportAbout = `Export a learned model to ONNX. It trains nothing: it reads a learner
snapshot (a learner's MarshalBinary, e.g. a registry artifact or a
checkpoint), checks that its feature layout is the one the spec's
featurize stage produces, and writes an ONNX model (opset 17) that
computes the learner's predictions, with its online scaler and feature
hashing embedded:

  inputs   dense   float32 [N, numeric fields (+3 entity aggregates)], raw values
           hashed  int32   [N, categorical fields], hashed indices (-1 absent)
  output   score   float32 [N, K]: P(y=1), K class probabilities, or the value

Inputs the model has no use for are left out. The model's name, version,
link, class count, hash bits and feature names go to its metadata. ONNX
Runtime scores it within 1e-5 of the Go learner.

Linear learners export as above. Hoeffding trees, adaptive trees and
forests export as ai.onnx.ml tree ensembles (TreeEnsembleClassifier or
TreeEnsembleRegressor), within 1e-6 of the Go predictions; leaves that
predict with naive Bayes or a linear model cannot be expressed so and are
refused unless --approximate is given.`

func cmdModelsExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("models export", "--spec FILE (--snapshot FILE | --model-version V) --out FILE", modelsExportAbout+"\n\nWith --model-version (a number or an alias) the snapshot comes from the\nregistry through the admin API, and the metadata carries its real\nversion number. "+apiFlagsAbout, stderr)
	af := addAPIFlags(fs)
	specPath := fs.String("spec", "", "the pipeline spec the learner was trained under (required)")
	snapPath := fs.String("snapshot", "", "the learner snapshot file to export")
	modelVersion := fs.String("model-version", "", "instead of --snapshot: the registry version (number or alias) of the spec's model to export")
	out := fs.String("out", "", "the ONNX file to write (required)")
	version := fs.String("version", "", "with --snapshot: the model version written to the metadata (default: the spec's model.version)")
	approximate := fs.Bool("approximate", false, "trees whose leaves use naive Bayes or a linear model: export their leaves' class distributions or means (scores then differ from the learner's)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *specPath == "" || (*snapPath == "") == (*modelVersion == "") || *out == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "driftline models export: --spec, --out and one of --snapshot and --model-version are required")
		fs.Usage()
		return errUsage
	}
	spec, err := app.LoadSpec(*specPath)
	if err != nil {
		return err
	}
	var data []byte
	source := "--snapshot " + *snapPath
	if *modelVersion != "" {
		c, err := af.client()
		if err != nil {
			return err
		}
		a, err := c.Download(ctx, spec.Model.Name, *modelVersion, "snapshot")
		if err != nil {
			return fmt.Errorf("--model-version %s: %w", *modelVersion, apiError(err))
		}
		data, *version, source = a.Data, strconv.FormatInt(a.Version, 10), "--model-version "+*modelVersion
	} else if data, err = os.ReadFile(*snapPath); err != nil {
		return fmt.Errorf("--snapshot: %w", err)
	}
	if *version == "" {
		*version = spec.Model.Version
		fmt.Fprintf(stderr, "models export: version %q is the spec's model.version; pass --version, or export a registry version with --model-version\n", *version)
	}
	model, info, err := app.ExportONNX(spec, data, *version, *approximate)
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	if err := app.WriteFileAtomic(*out, model); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes): model %q version %q, %s\n", *out, len(model), spec.Model.Name, *version, info)
	return nil
}
