package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/evaluate"
	"github.com/driftline/driftline/testkit/streams/feed"
)

const evalAbout = `Prequential evaluation, River's progressive_val_score for driftline: every
row is predicted, then learned, in order, by a fresh model of the given
kind, in the learner's exact semantics, and the predictions made before
learning are scored. Prints accuracy, log loss and ROC AUC (classification)
or MAE and RMSE (regression), the rows, and the events per second of the
predict and learn calls (reading the data is not timed).

Data comes from a file or a seeded synthetic stream:
  --in FILE --label COLUMN   a .csv (with a header), .jsonl or .parquet file;
                             every other numeric column (booleans as 0/1) is a
                             dense feature, empty or null values missing, and
                             every text column a categorical, hashed into
                             2^18 buckets. Class labels are integers 0..K-1 or
                             text (classes in sorted order).
  --stream sea|agrawal|hyperplane --events N [--drift none|abrupt|gradual]
                             testkit's generators (the same as produce's),
                             their concept's attributes as dense features;
                             --save FILE writes the rows as CSV (label "y"),
                             so other tools can read identical rows.

Examples:
  driftline eval --model hat --param grace_period=200 --in data.csv --label y
  driftline eval --model arf --stream agrawal --events 100000 --drift abrupt --every 10000
  driftline eval --model logistic --param optimizer=adagrad --stream sea --json`

// paramFlag collects repeated --param k=v flags.
type paramFlag map[string]string

func (p paramFlag) String() string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k+"="+p[k])
	}
	slices.Sort(keys)
	return strings.Join(keys, ",")
}

func (p paramFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("want key=value, got %q", v)
	}
	if _, dup := p[strings.TrimSpace(k)]; dup {
		return fmt.Errorf("param %q given twice", k)
	}
	p[strings.TrimSpace(k)] = val
	return nil
}

func cmdEval(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval", "--model KIND [--param k=v]... (--in FILE --label COLUMN | --stream NAME) [flags]", evalAbout+"\n\n"+modelKindsHelp(), stderr)
	kind := fs.String("model", "", "learner kind (see the list above); required")
	params := paramFlag{}
	fs.Var(params, "param", "a learner parameter as key=value; repeatable")
	in := fs.String("in", "", "file to evaluate on (.csv, .jsonl, .ndjson or .parquet)")
	label := fs.String("label", "", "label column of --in")
	stream := fs.String("stream", "", "synthetic stream instead of a file: sea, agrawal or hyperplane")
	events := fs.Int("events", 100000, "rows of --stream")
	save := fs.String("save", "", "with --stream, also write its rows to this CSV file")
	asJSON := fs.Bool("json", false, "print a JSON summary (rows, accuracy or mae/rmse, events_per_s, …)")
	every := fs.Int("every", 0, "print a learning curve point every N rows (0: none)")
	var sf streamFlags
	fs.StringVar(&sf.driftKind, "drift", "none", "--stream's concept drift: none, abrupt or gradual")
	fs.Int64Var(&sf.driftAt, "drift-at", -1, "row where the concept changes, the midpoint of a gradual drift (-1: --events/2)")
	fs.Int64Var(&sf.width, "drift-width", 10000, "rows over which a gradual drift happens")
	fs.Float64Var(&sf.noise, "noise", 0, "share of --stream's labels flipped at random, in [0, 0.5]")
	fs.IntVar(&sf.variant, "variant", 0, "concept before the drift: SEA variant 0-3 or Agrawal function 0-9")
	fs.IntVar(&sf.driftTo, "drift-to", -1, "concept after the drift (-1: SEA variant+2 mod 4, Agrawal function+4 mod 10)")
	fs.Uint64Var(&sf.seed, "seed", 1, "seed of --stream, and of the model where it draws random numbers (unless --param seed=)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	seedSet := false
	fs.Visit(func(f *flag.Flag) { seedSet = seedSet || f.Name == "seed" })
	if *kind == "" || fs.NArg() != 0 || (*in == "") == (*stream == "") || (*in != "" && *label == "") || *every < 0 {
		fmt.Fprintln(stderr, "driftline eval: --model, and either --in with --label or --stream, are required")
		fs.Usage()
		return errUsage
	}
	spec := models.LearnerSpec{Kind: *kind, Params: params}
	task, err := spec.Task()
	if err != nil {
		return fmt.Errorf("--model: %w", err)
	}
	if seedSet {
		addSeed(&spec, sf.seed)
	}
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("--param: %w", err)
	}
	var data *evaluate.Dataset
	if *in != "" {
		if data, err = evaluate.ReadFile(*in, evaluate.ReadOptions{Label: *label}); err != nil {
			return fmt.Errorf("--in: %w", err)
		}
	} else {
		if task != models.TaskClassification {
			return errors.New("--stream: the synthetic streams are classification streams; choose a classification model")
		}
		sf.concept = *stream
		if sf.driftAt < 0 {
			sf.driftAt = int64(*events / 2)
		}
		if data, err = feed.Dataset(sf.config(), *events); err != nil {
			return fmt.Errorf("--stream: %w", err)
		}
		if *save != "" {
			if err := data.WriteCSVFile(*save); err != nil {
				return fmt.Errorf("--save: %w", err)
			}
		}
	}
	y, classes, _, err := data.Targets(task)
	if err != nil {
		return err
	}
	if task == models.TaskRegression {
		classes = 0
	}
	learner, err := models.NewLearnerFromSpec(spec, data.Shape(), max(classes, 2))
	if err != nil {
		return err
	}
	rep, err := evaluate.Run(learner, data, y, classes, evaluate.Options{Every: *every})
	if err != nil {
		return err
	}
	if *asJSON {
		out := struct {
			Model  string            `json:"model"`
			Params map[string]string `json:"params,omitempty"`
			evaluate.Report
		}{*kind, spec.Params, rep}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	printReport(stdout, spec, data, rep)
	return nil
}

// addSeed gives a kind that draws random numbers the --seed, unless a
// seed param is set.
func addSeed(spec *models.LearnerSpec, seed uint64) {
	if _, ok := spec.Params["seed"]; ok {
		return
	}
	for _, k := range models.LearnerKinds() {
		if k.Kind != spec.Kind {
			continue
		}
		for _, p := range k.Params {
			if p.Name == "seed" {
				if spec.Params == nil {
					spec.Params = map[string]string{}
				}
				spec.Params["seed"] = strconv.FormatUint(seed, 10)
			}
		}
	}
}

func printReport(w io.Writer, spec models.LearnerSpec, d *evaluate.Dataset, rep evaluate.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "model\t%s %s\n", spec.Kind, paramFlag(spec.Params))
	fmt.Fprintf(tw, "task\t%s", rep.Task)
	if rep.Classes > 0 {
		fmt.Fprintf(tw, ", %d classes", rep.Classes)
	}
	fmt.Fprintf(tw, "\nfeatures\t%d dense, %d hashed\n", len(d.Dense), len(d.Hashed))
	fmt.Fprintf(tw, "rows\t%d", rep.Rows)
	if rep.Skipped > 0 {
		fmt.Fprintf(tw, " (%d without a label skipped)", rep.Skipped)
	}
	fmt.Fprintln(tw)
	printPoint(tw, rep.Point)
	fmt.Fprintf(tw, "events/s\t%.0f\n", rep.EventsPerS)
	tw.Flush()
	if len(rep.Curve) > 0 {
		fmt.Fprintln(w, "\nlearning curve:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		for _, p := range rep.Curve {
			fmt.Fprintf(tw, "%d\t", p.Rows)
			for _, m := range []struct {
				name string
				v    *float64
			}{{"accuracy", p.Accuracy}, {"logloss", p.LogLoss}, {"auc", p.AUC}, {"mae", p.MAE}, {"rmse", p.RMSE}} {
				if m.v != nil {
					fmt.Fprintf(tw, "%s %.4f\t", m.name, *m.v)
				}
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
	}
}

func printPoint(w io.Writer, p evaluate.Point) {
	for _, m := range []struct {
		name string
		v    *float64
	}{{"accuracy", p.Accuracy}, {"logloss", p.LogLoss}, {"auc", p.AUC}, {"mae", p.MAE}, {"rmse", p.RMSE}} {
		if m.v != nil {
			fmt.Fprintf(w, "%s\t%.4f\n", m.name, *m.v)
		}
	}
}

// modelKindsHelp lists the learner kinds and their parameters.
func modelKindsHelp() string {
	var b strings.Builder
	b.WriteString("Model kinds (--model) and their parameters (--param name=value, default in brackets):\n")
	for _, k := range models.LearnerKinds() {
		fmt.Fprintf(&b, "\n  %s (%s): %s\n", k.Kind, k.Task, k.About)
		for _, p := range k.Params {
			fmt.Fprintf(&b, "      %-24s %s [%s]\n", p.Name, p.About, p.Default)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}
