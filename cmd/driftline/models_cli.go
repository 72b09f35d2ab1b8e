package main

// The `driftline models` subcommands that talk to the admin API:
// list, show, promote, rollback, pause, resume, retrain and token.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/driftline/driftline/models/adminapi"
	"github.com/driftline/driftline/models/registry"
)

// Environment variables the API subcommands read.
const (
	envAdminURL = "DRIFTLINE_ADMIN_URL"
	// envToken is the token the CLI sends: the same variable the server
	// reads its bootstrap admin token from, so that one export serves both.
	envToken = adminapi.EnvAdminToken
)

// modelsAPISubcommands are the `driftline models` subcommands served by the admin API;
// cmdModels dispatches to them.
var modelsAPISubcommands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{
	"list":     cmdModelsList,
	"show":     cmdModelsShow,
	"promote":  cmdModelsPromote,
	"rollback": cmdModelsRollback,
	"pause":    cmdModelsPause,
	"resume":   cmdModelsResume,
	"retrain":  cmdModelsRetrain,
	"token":    cmdModelsToken,
	"abort":    cmdModelsAbort,    // models_rollout.go
	"download": cmdModelsDownload, // models_rollout.go
}

const apiFlagsAbout = `It talks to the admin API (/api/v1 on the admin address of "driftline run")
at --admin-url (or $DRIFTLINE_ADMIN_URL) with the bearer token --token (or
$DRIFTLINE_ADMIN_TOKEN, the variable "driftline run" reads its bootstrap
admin token from). Roles: viewer reads; operator also promotes, rolls back,
pauses, resumes and requests retraining; admin also manages tokens and policies.`

// apiFlags are the connection flags every API subcommand takes.
type apiFlags struct {
	url     *string
	token   *string
	timeout *time.Duration
}

func addAPIFlags(fs *flag.FlagSet) apiFlags {
	return apiFlags{
		url:     fs.String("admin-url", os.Getenv(envAdminURL), "base URL of the admin address, e.g. http://127.0.0.1:9464 (default $"+envAdminURL+")"),
		token:   fs.String("token", "", "bearer token (default $"+envToken+")"),
		timeout: fs.Duration("timeout", 30*time.Second, "time limit for each HTTP call"),
	}
}

// client checks the flags and returns an API client.
func (f apiFlags) client() (*adminapi.Client, error) {
	tok := *f.token
	if tok == "" {
		tok = os.Getenv(envToken)
	}
	if *f.url == "" {
		return nil, fmt.Errorf("--admin-url: required (or set $%s), e.g. http://127.0.0.1:9464", envAdminURL)
	}
	if tok == "" {
		return nil, fmt.Errorf("--token: required (or set $%s)", envToken)
	}
	c, err := adminapi.NewClient(*f.url, tok, *f.timeout)
	if err != nil {
		return nil, fmt.Errorf("--admin-url: %w", err)
	}
	return c, nil
}

// apiError adds a hint to the API's 401 and 403 answers.
func apiError(err error) error {
	var se *adminapi.StatusError
	if !errors.As(err, &se) {
		return err
	}
	switch se.Status {
	case http.StatusUnauthorized:
		return fmt.Errorf("%w (check --token or $%s)", err, envToken)
	case http.StatusForbidden:
		return fmt.Errorf("%w (ask an admin for a token with a higher role)", err)
	}
	return err
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments, and checks that there are exactly the names wanted.
func parseInterleaved(fs *flag.FlagSet, args []string, names ...string) ([]string, error) {
	pos, err := parsePositional(fs, args)
	if err != nil {
		return nil, err
	}
	return pos, checkPositional(fs, pos, names...)
}

// parsePositional parses flags that may come before, between or after the
// positional arguments, and returns the positional arguments.
func parsePositional(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// checkPositional reports, with usage, positional arguments that are not exactly
// the names wanted.
func checkPositional(fs *flag.FlagSet, pos []string, names ...string) error {
	if len(pos) != len(names) {
		if len(pos) < len(names) {
			fmt.Fprintf(fs.Output(), "driftline %s: missing %s\n", fs.Name(), strings.Join(names[len(pos):], " "))
		} else {
			fmt.Fprintf(fs.Output(), "driftline %s: unexpected argument %q\n", fs.Name(), pos[len(names)])
		}
		fs.Usage()
		return errUsage
	}
	return nil
}

// requireFlag reports a missing required string flag.
func requireFlag(fs *flag.FlagSet, name, value string) error {
	if strings.TrimSpace(value) != "" {
		return nil
	}
	fmt.Fprintf(fs.Output(), "driftline %s: --%s is required\n", fs.Name(), name)
	fs.Usage()
	return errUsage
}

func parseVersion(flagName, s string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimPrefix(s, "v"), 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s: %q is not a version number ≥ 1", flagName, s)
	}
	return n, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// reasonedCommand is the front half every "NAME --reason R" command shares
// (abort, pause, resume, rollback, token revoke): its flag set with the
// admin API flags and a required --reason. Add a command's own flags to fs
// before parse.
type reasonedCommand struct {
	fs     *flag.FlagSet
	api    apiFlags
	reason *string
}

func newReasonedCommand(name, usage, about string, stderr io.Writer) reasonedCommand {
	fs := newFlags(name, usage, about, stderr)
	return reasonedCommand{fs: fs, api: addAPIFlags(fs), reason: fs.String("reason", "", "why (required; goes to the audit log)")}
}

// parse reads args, which must name NAME and set --reason, and opens the
// admin API client.
func (rc reasonedCommand) parse(args []string) (name string, c *adminapi.Client, err error) {
	pos, err := parseInterleaved(rc.fs, args, "NAME")
	if err != nil {
		return "", nil, err
	}
	if err := requireFlag(rc.fs, "reason", *rc.reason); err != nil {
		return "", nil, err
	}
	c, err = rc.api.client()
	return pos[0], c, err
}

func cmdModelsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("models list", "[flags]", "List the registered models: versions, latest version, aliases and\nwhether the rollout is paused. Needs a viewer token.\n\n"+apiFlagsAbout, stderr)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON answer")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	list, err := c.Models(ctx)
	if err != nil {
		return apiError(err)
	}
	out := struct {
		Models []adminapi.ModelSummary `json:"models"`
	}{list}
	if *asJSON {
		return printJSON(stdout, out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tVERSIONS\tLATEST\tCHAMPION\tALIASES\tPAUSED")
	for _, m := range out.Models {
		champion := "-"
		if v, ok := m.Aliases["champion"]; ok {
			champion = strconv.FormatInt(v, 10)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%t\n", m.Name, m.Versions, m.Latest, champion, formatAliases(m.Aliases), m.Paused)
	}
	return tw.Flush()
}

func formatAliases(m map[string]int64) string { return formatSorted(m, "%s=%d") }

// formatSorted prints a map as "k=v,…" in key order ("-" when empty),
// each pair with format.
func formatSorted[V any](m map[string]V, format string) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf(format, k, m[k])
	}
	return strings.Join(parts, ",")
}

func cmdModelsShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("models show", "NAME [flags]", "Show a model: its aliases and alias epoch, the canary's traffic share,\nthe pause flag, the gate policy, the retrain triggers queued, the rollout in progress (phase, step,\nprogress and the gate's evidence), and every version with its creator, parent, source and metrics.\nNeeds a viewer token.\n\n"+apiFlagsAbout, stderr)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON answer (full lineage and signature)")
	pos, err := parseInterleaved(fs, args, "NAME")
	if err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	m, err := c.Model(ctx, pos[0])
	if err != nil {
		return apiError(err)
	}
	if *asJSON {
		return printJSON(stdout, m)
	}
	fmt.Fprintf(stdout, "model:   %s\naliases: %s (epoch %d)\n", m.Name, formatAliases(m.Aliases), m.Epoch)
	if m.TrafficSet {
		fmt.Fprintf(stdout, "traffic: canary %d%%\n", m.CanaryPercent)
	} else {
		fmt.Fprintln(stdout, "traffic: canary share never set (instances serve the spec's rollout.canary_percent)")
	}
	if m.Paused != nil {
		fmt.Fprintf(stdout, "paused:  yes, by %s at %s: %s\n", m.Paused.Who, m.Paused.When.Format(time.RFC3339), m.Paused.Why)
	} else {
		fmt.Fprintln(stdout, "paused:  no")
	}
	if m.Policy != nil {
		g := m.Policy.Gate
		fmt.Fprintf(stdout, "policy:  %s within %g at %g, min %d samples, steps %v (set by %s)\n", g.Metric, g.MaxDelta, g.Confidence, g.MinSamples, g.Steps, m.Policy.Who)
	}
	for _, q := range m.RetrainsQueued {
		fmt.Fprintf(stdout, "retrain: queued since %s, %s %s: %s\n", q.Since.UTC().Format(time.RFC3339), q.Kind, q.Key, q.Reason)
	}
	printRollout(ctx, stdout, c, pos[0])
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tCREATED\tBY\tALIASES\tPARENT\tSOURCE\tMETRICS")
	for _, v := range m.Versions {
		aliases, parent := "-", "-"
		if len(v.Aliases) > 0 {
			aliases = strings.Join(v.Aliases, ",")
		}
		if v.Lineage.Parent != 0 {
			parent = strconv.FormatInt(v.Lineage.Parent, 10)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Number, v.Created.UTC().Format(time.RFC3339), v.CreatedBy,
			aliases, parent, formatSource(v), formatMetrics(v.Lineage.Metrics))
	}
	return tw.Flush()
}

func formatSource(v adminapi.VersionView) string {
	s := v.Lineage.Source
	if s.Topic == "" && s.From.IsZero() {
		return "-"
	}
	var parts []string
	if s.Topic != "" {
		parts = append(parts, s.Topic)
	}
	for _, p := range s.Partitions {
		parts = append(parts, fmt.Sprintf("p%d[%d,%d)", p.Partition, p.From, p.To))
	}
	if !s.From.IsZero() {
		parts = append(parts, s.From.UTC().Format(time.RFC3339)+".."+s.To.UTC().Format(time.RFC3339))
	}
	return strings.Join(parts, " ")
}

func formatMetrics(m map[string]float64) string { return formatSorted(m, "%s=%.4g") }

const modelsPromoteAbout = `Point an alias of model NAME at VERSION, by compare-and-set: the move
fails with 409 if the alias changed meanwhile (or is not --expect). The
audit log records who (the token's name), when, the alias and --reason.
Needs an operator token. --model and --version may stand for NAME and
VERSION.

--alias champion (the default) is a direct override: VERSION serves as
champion at once, without the rollout gate. Roll it back with rollback.

--alias canary or shadow hands VERSION to the governed rollout: the
governor measures the candidate (the canary alias, else the shadow alias)
against the champion on the rollout gate, then advances it step by step
to champion or rolls it back. Moving the canary replaces the candidate
being measured, and a new canary serves the canary's current traffic
share (see show) until the gate changes it.`

func cmdModelsPromote(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("models promote", "NAME VERSION --reason R [--alias champion|canary|shadow] [flags]", modelsPromoteAbout+"\n\n"+apiFlagsAbout, stderr)
	af := addAPIFlags(fs)
	reason := fs.String("reason", "", "why (required; goes to the audit log)")
	alias := fs.String("alias", registry.AliasChampion, "the alias to move: "+strings.Join(adminapi.PromotableAliases, ", "))
	expect := fs.String("expect", "", "fail unless the alias is this version now (0: unset)")
	model := fs.String("model", "", "the model, instead of NAME")
	version := fs.String("version", "", "the version, instead of VERSION")
	pos, err := parsePositional(fs, args)
	if err != nil {
		return err
	}
	// Positional arguments fill NAME and VERSION where their flags are not set.
	slots := []*string{model, version}
	var names []string
	for i, slot := range slots {
		if *slot == "" {
			names = append(names, []string{"NAME", "VERSION"}[i])
		}
	}
	if err := checkPositional(fs, pos, names...); err != nil {
		return err
	}
	for _, slot := range slots {
		if *slot == "" {
			*slot, pos = pos[0], pos[1:]
		}
	}
	if err := requireFlag(fs, "reason", *reason); err != nil {
		return err
	}
	v, err := parseVersion("VERSION", *version)
	if err != nil {
		return err
	}
	if !slices.Contains(adminapi.PromotableAliases, *alias) {
		return fmt.Errorf("--alias: %q is not one of %s", *alias, strings.Join(adminapi.PromotableAliases, ", "))
	}
	req := adminapi.PromoteRequest{Version: v, Reason: *reason, Alias: *alias}
	if *expect != "" {
		e, err := strconv.ParseInt(*expect, 10, 64)
		if err != nil || e < 0 {
			return fmt.Errorf("--expect: %q is not a version number (0 for unset)", *expect)
		}
		req.Expect = &e
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	res, err := c.Promote(ctx, *model, req)
	if err != nil {
		return apiError(err)
	}
	fmt.Fprintf(stdout, "promoted %s: %s %s -> %d (alias epoch %d)\n", res.Model, res.Alias, versionOrNone(res.From), res.To, res.Epoch)
	if res.Alias != registry.AliasChampion {
		fmt.Fprintf(stdout, "version %d goes to the rollout gate: the governor measures it against the champion, then advances or rolls it back\n", res.To)
	}
	return nil
}

func versionOrNone(v int64) string {
	if v == 0 {
		return "none"
	}
	return strconv.FormatInt(v, 10)
}

func cmdModelsRollback(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	rc := newReasonedCommand("models rollback", "NAME --reason R [--to VERSION] [flags]", "Move the champion of model NAME back: to --to VERSION, or else to the\nchampion before the current one, as the audit trail records it (each\nrollback steps one further back). Compare-and-set, so it fails with 409\nif the champion moved meanwhile. Needs an operator token.\n\n"+apiFlagsAbout, stderr)
	to := rc.fs.String("to", "", "the version to roll back to (default: the previous champion)")
	name, c, err := rc.parse(args)
	if err != nil {
		return err
	}
	req := adminapi.RollbackRequest{Reason: *rc.reason}
	if *to != "" {
		v, err := parseVersion("--to", *to)
		if err != nil {
			return err
		}
		req.To = &v
	}
	res, err := c.Rollback(ctx, name, req)
	if err != nil {
		return apiError(err)
	}
	fmt.Fprintf(stdout, "rolled back %s: champion %s -> %d (alias epoch %d)\n", res.Model, versionOrNone(res.From), res.To, res.Epoch)
	return nil
}

func cmdModelsPause(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return pauseResume(ctx, "pause", args, stdout, stderr)
}

func cmdModelsResume(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return pauseResume(ctx, "resume", args, stdout, stderr)
}

func pauseResume(ctx context.Context, verb string, args []string, stdout, stderr io.Writer) error {
	about := "Pause the rollout of model NAME: the canary stops advancing and nothing\nis promoted until resume; automatic rollback stays on."
	if verb == "resume" {
		about = "Resume the paused rollout of model NAME."
	}
	rc := newReasonedCommand("models "+verb, "NAME --reason R [flags]", about+" Needs an operator\ntoken; the audit log records who, when and --reason.\n\n"+apiFlagsAbout, stderr)
	name, c, err := rc.parse(args)
	if err != nil {
		return err
	}
	if err := c.SetPaused(ctx, name, verb == "pause", *rc.reason); err != nil {
		return apiError(err)
	}
	past := map[string]string{"pause": "paused", "resume": "resumed"}[verb]
	fmt.Fprintf(stdout, "%s the rollout of %s\n", past, name)
	return nil
}

// keyValues is a repeatable key=value flag.
type keyValues map[string]string

func (kv keyValues) String() string {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		keys[i] = k + "=" + kv[k]
	}
	return strings.Join(keys, ",")
}

func (kv keyValues) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return errors.New("want key=value")
	}
	kv[k] = v
	return nil
}

func cmdModelsRetrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	rc := newReasonedCommand("models retrain", "NAME --reason R [--detail k=v]... [flags]", "Request a retrain of model NAME: the request goes to the Redis stream\n{driftline:admin}:retrain-requests, which the retrain job consumes, and to\nthe audit log. Needs an operator token.\n\n"+apiFlagsAbout, stderr)
	details := keyValues{}
	rc.fs.Var(details, "detail", "key=value passed to the retrain job (repeatable)")
	name, c, err := rc.parse(args)
	if err != nil {
		return err
	}
	req := adminapi.RetrainBody{Reason: *rc.reason}
	if len(details) > 0 {
		req.Details = details
	}
	request, audit, err := c.Retrain(ctx, name, req)
	if err != nil {
		return apiError(err)
	}
	fmt.Fprintf(stdout, "retrain of %s requested: request %s, audit event %s\n", name, request, audit)
	return nil
}

const modelsTokenUsage = `Usage: driftline models token <create|list|revoke> [flags]

Manage the admin API's bearer tokens (needs an admin token):
  create --role viewer|operator|admin --name N   make a token; it is printed once
  list                                           token names, roles, creators
  revoke NAME --reason R                         stop a token working
`

func cmdModelsToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, modelsTokenUsage)
		return errUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stderr, modelsTokenUsage)
		return flag.ErrHelp
	case "create":
		return cmdTokenCreate(ctx, args[1:], stdout, stderr)
	case "list":
		return cmdTokenList(ctx, args[1:], stdout, stderr)
	case "revoke":
		return cmdTokenRevoke(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "driftline models token: unknown subcommand %q\n\n%s", args[0], modelsTokenUsage)
	return errUsage
}

func cmdTokenCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("models token create", "--role R --name N [flags]", "Create a bearer token for the admin API and print it, alone, on stdout.\nIt is shown only this once: Redis keeps only its sha256. Needs an admin\ntoken (e.g. the server's $"+adminapi.EnvAdminToken+").\n\n"+apiFlagsAbout, stderr)
	af := addAPIFlags(fs)
	role := fs.String("role", "", "viewer, operator or admin (required)")
	name := fs.String("name", "", "the token's name, recorded as who in the audit log (required)")
	reason := fs.String("reason", "", "why, for the audit log")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if err := requireFlag(fs, "role", *role); err != nil {
		return err
	}
	if err := requireFlag(fs, "name", *name); err != nil {
		return err
	}
	if adminapi.RoleRank(*role) == 0 {
		return fmt.Errorf("--role: %q is not one of viewer, operator, admin", *role)
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	res, err := c.CreateToken(ctx, adminapi.TokenRequest{Name: *name, Role: *role, Reason: *reason})
	if err != nil {
		return apiError(err)
	}
	fmt.Fprintln(stdout, res.Token)
	fmt.Fprintf(stderr, "created %s token %q; store it now, it is not shown again\n", res.Role, res.Name)
	return nil
}

func cmdTokenList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("models token list", "[flags]", "List the admin API's tokens: name, role, creator and time; never the\nsecrets. Needs an admin token.\n\n"+apiFlagsAbout, stderr)
	af := addAPIFlags(fs)
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	tokens, err := c.Tokens(ctx)
	if err != nil {
		return apiError(err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tCREATED\tBY")
	for _, t := range tokens {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Role, t.Created.UTC().Format(time.RFC3339), t.CreatedBy)
	}
	return tw.Flush()
}

func cmdTokenRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	rc := newReasonedCommand("models token revoke", "NAME --reason R [flags]", "Revoke the token named NAME: it stops working at once. Needs an admin\ntoken.\n\n"+apiFlagsAbout, stderr)
	name, c, err := rc.parse(args)
	if err != nil {
		return err
	}
	if err := c.RevokeToken(ctx, name, *rc.reason); err != nil {
		return apiError(err)
	}
	fmt.Fprintf(stdout, "revoked token %s\n", name)
	return nil
}
