package main

// `driftline models` subcommands beside the alias moves: abort, download,
// and the rollout section of show.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/driftline/driftline/internal/app"
	"github.com/driftline/driftline/models/adminapi"
	"github.com/driftline/driftline/models/rollout"
)

func cmdModelsAbort(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	rc := newReasonedCommand("models abort", "NAME --reason R [flags]", "Abort the rollout of model NAME: the candidate (the canary alias, else the\nshadow alias) loses its aliases and the canary's share goes to 0; the\nchampion keeps serving. Needs an operator token; the audit log records\nwho, when and --reason.\n\n"+apiFlagsAbout, stderr)
	name, c, err := rc.parse(args)
	if err != nil {
		return err
	}
	res, err := c.Abort(ctx, name, *rc.reason)
	if err != nil {
		return apiError(err)
	}
	fmt.Fprintf(stdout, "aborted the rollout of %s: version %d lost %s\n", res.Model, res.Candidate, strings.Join(res.Aliases, " and "))
	return nil
}

func cmdModelsDownload(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("models download", "NAME VERSION --out FILE [--onnx] [flags]", "Download a registry version's learner snapshot (or, with --onnx, its ONNX\nmodel) through the admin API and write it to --out. VERSION is a number\nor an alias (champion, canary, shadow, previous). The bytes are checked\nagainst the sha256 the registry recorded. Needs a viewer token.\n\n"+apiFlagsAbout, stderr)
	af := addAPIFlags(fs)
	out := fs.String("out", "", "the file to write (required)")
	onnx := fs.Bool("onnx", false, "download the ONNX model instead of the learner snapshot")
	pos, err := parseInterleaved(fs, args, "NAME", "VERSION")
	if err != nil {
		return err
	}
	if err := requireFlag(fs, "out", *out); err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	kind := "snapshot"
	if *onnx {
		kind = "onnx"
	}
	a, err := c.Download(ctx, pos[0], pos[1], kind)
	if err != nil {
		return apiError(err)
	}
	if err := app.WriteFileAtomic(*out, a.Data); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes): %s of model %s version %d, sha256 %s\n", *out, len(a.Data), kind, pos[0], a.Version, a.SHA256)
	return nil
}

// printRollout prints the rollout section of `models show`: the governor's
// phase, step and progress, the gate and its last evidence.
func printRollout(ctx context.Context, w io.Writer, c *adminapi.Client, model string) {
	st, err := c.Rollout(ctx, model)
	var se *adminapi.StatusError
	switch {
	case errors.As(err, &se) && se.Status == http.StatusNotFound:
		fmt.Fprintln(w, "rollout: the instance at --admin-url runs no governor of this model (see the audit log)")
		return
	case err != nil:
		fmt.Fprintf(w, "rollout: unknown (%v)\n", err)
		return
	case !st.Leader:
		fmt.Fprintln(w, "rollout: another instance holds the governor lease (ask its admin address, or see the audit log)")
		return
	case st.Candidate == 0:
		fmt.Fprintln(w, "rollout: none in progress")
		return
	}
	step := string(st.Phase)
	if st.Phase == rollout.PhaseCanary {
		step = fmt.Sprintf("canary step %d of %d (%d%% of keys)", st.Step+1, len(st.Steps)-1, st.Percent)
	}
	paused := ""
	if st.Paused {
		paused = ", paused"
	}
	fmt.Fprintf(w, "rollout: version %d vs champion %s: %s%s; %d of %d candidate outcomes at this step\n",
		st.Candidate, st.ChampionVersion, step, paused, st.StepDone, st.StepNeeded)
	if e := st.Evidence; e != nil {
		fmt.Fprintf(w, "gate:    %s candidate %.4g (n=%d) vs champion %.4g (n=%d): improvement %.4g in [%.4g, %.4g]\n",
			e.Metric, e.Candidate.Value, e.Candidate.N, e.Champion.Value, e.Champion.N, e.Improvement, e.Lower, e.Upper)
	}
	if st.LastWhat != "" {
		fmt.Fprintf(w, "last:    %s: %s\n", strings.TrimPrefix(st.LastWhat, "rollout."), st.LastReason)
	}
}
