package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// fixEnv is what `hotctl fix` needs of the command line and the process.
type fixEnv struct {
	socket, addr, token string
	timeout             time.Duration
	raw                 bool // print the host's JSON as is
	stdout, stderr      io.Writer
}

// fixCmd runs `hotctl fix <sub> ...` and returns the exit code.
func fixCmd(args []string, env fixEnv) int {
	if err := runFix(args, env); err != nil {
		fmt.Fprintln(env.stderr, "hotctl fix:", err)
		var ue fixUsageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

type fixUsageError string

func (u fixUsageError) Error() string { return string(u) }

const fixUsage = "usage: hotctl fix dry-run|apply <fix.so> [flags] | resume|cancel|undo <run> [flags] | runs [<run>]"

func runFix(args []string, env fixEnv) error {
	if len(args) == 0 {
		return fixUsageError(fixUsage)
	}
	sub := args[0]
	fs := flag.NewFlagSet("hotctl fix "+sub, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	ids := fs.String("ids", "", "players: ids and ranges (1,2,5-9); default every player the fix selects")
	limit := fs.Int("limit", 100, "dry-run: players listed (the totals cover all)")
	deadline := fs.Duration("deadline", 10*time.Minute, "dry-run, apply, resume: stop after this long")
	playerTimeout := fs.Duration("player-timeout", 0, "apply, resume: abandon an Apply running longer (default: the host's handler timeout)")
	maxFailures := fs.Int("max-failures", -1, "apply, resume: stop after this many players failed (default 10)")
	noWait := fs.Bool("no-wait", false, "apply, resume: start the run and return (follow it with `hotctl fix runs <run>`)")
	force := fs.Bool("force", false, "undo: also put back players changed since the fix")
	diffs := fs.Int("diffs", 20, "runs <run>, apply: players whose changes are listed")
	// Flags may follow the argument: hotctl fix apply coinfix-1.0.0.so -ids 1-9.
	var pos []string
	rest := args[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			return fixUsageError(err.Error())
		}
		if fs.NArg() == 0 {
			break
		}
		pos, rest = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	q := url.Values{}
	set := func(k, v string, ok bool) {
		if ok {
			q.Set(k, v)
		}
	}
	set("ids", *ids, *ids != "")
	set("deadline", deadline.String(), sub != "undo" && sub != "cancel" && sub != "runs")
	set("player_timeout", playerTimeout.String(), *playerTimeout > 0)
	set("max_failures", fmt.Sprint(*maxFailures), *maxFailures >= 0)
	api := env.api(max(env.timeout, *deadline+30*time.Second))
	one := func(what string) (string, error) {
		if len(pos) != 1 {
			return "", fixUsageError(fmt.Sprintf("usage: hotctl fix %s <%s> [flags]", sub, what))
		}
		return pos[0], nil
	}
	switch sub {
	case "dry-run", "apply":
		file, err := one("fix.so")
		if err != nil {
			return err
		}
		if file, err = env.stage(file); err != nil {
			return err
		}
		q.Set("file", file)
		if sub == "dry-run" {
			q.Set("limit", fmt.Sprint(*limit))
			return api.show("/v1/fix/dry-run?"+q.Encode(), printDryRun)
		}
		return api.start("/v1/fix/apply?"+q.Encode(), *noWait, *diffs)
	case "resume":
		run, err := one("run")
		if err != nil {
			return err
		}
		q.Set("run", run)
		return api.start("/v1/fix/resume?"+q.Encode(), *noWait, *diffs)
	case "cancel", "undo":
		run, err := one("run")
		if err != nil {
			return err
		}
		q.Set("run", run)
		set("force", "1", *force)
		return api.show("/v1/fix/"+sub+"?"+q.Encode(), printRun)
	case "runs":
		if len(pos) == 0 {
			return api.get("/v1/fix/runs", printRuns)
		}
		run, err := one("run")
		if err != nil {
			return err
		}
		return api.get("/v1/fix/runs?"+url.Values{"run": {run}, "diffs": {fmt.Sprint(*diffs)}}.Encode(), printRun)
	}
	return fixUsageError(fmt.Sprintf("unknown fix command %q; %s", sub, fixUsage))
}

// stage returns the name to send for the fix file arg. A file on this
// machine outside the host's fix folder (<socket's folder>/fixes) is
// copied there first with its sidecars, when hotctl talks to the host over
// its socket; anything else is a name in that folder.
func (env fixEnv) stage(arg string) (string, error) {
	base := filepath.Base(arg)
	if _, err := os.Stat(arg); err != nil || env.addr != "" {
		return base, nil
	}
	dir := filepath.Join(filepath.Dir(env.socket), "fixes")
	if a, b := absDir(arg), absDir(filepath.Join(dir, base)); a == b {
		return base, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	for _, ext := range []string{".sig", ".sha256", ""} {
		b, err := os.ReadFile(arg + ext)
		if errors.Is(err, os.ErrNotExist) && ext != "" {
			continue
		}
		if err != nil {
			return "", err
		}
		dst := filepath.Join(dir, base+ext)
		if old, err := os.ReadFile(dst); err == nil {
			if !bytes.Equal(old, b) {
				return "", fmt.Errorf("%s holds another %s: a new build needs a new version", dir, base+ext)
			}
			continue
		}
		tmp := dst + ".tmp"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			return "", err
		}
		if err := os.Rename(tmp, dst); err != nil {
			return "", err
		}
	}
	return base, nil
}

func absDir(p string) string {
	a, err := filepath.Abs(filepath.Dir(p))
	if err != nil {
		return p
	}
	return a
}

// fixAPI calls the admin API for `hotctl fix`.
type fixAPI struct {
	client      *http.Client
	base, token string
	raw         bool
	out, log    io.Writer
}

func (env fixEnv) api(timeout time.Duration) fixAPI {
	a := newAdminClient(env.socket, env.addr, env.token, timeout)
	return fixAPI{client: a.http, base: a.base, token: env.token, raw: env.raw, out: env.stdout, log: env.stderr}
}

// call sends one request and returns the answer's body; an answer other
// than 2xx is an error carrying the host's message.
func (a fixAPI) call(method, path string) ([]byte, error) {
	req, err := http.NewRequest(method, a.base+path, nil)
	if err != nil {
		return nil, err
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s (%s)", e.Error, resp.Status)
		}
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

func (a fixAPI) get(path string, print func(io.Writer, []byte) error) error {
	return a.print(http.MethodGet, path, print)
}

func (a fixAPI) show(path string, print func(io.Writer, []byte) error) error {
	return a.print(http.MethodPost, path, print)
}

func (a fixAPI) print(method, path string, print func(io.Writer, []byte) error) error {
	body, err := a.call(method, path)
	if err != nil {
		return err
	}
	if a.raw {
		_, err = a.out.Write(body)
		return err
	}
	return print(a.out, body)
}

// start starts an apply or resume and, unless noWait, follows the run
// until it ends, then prints it with its first diffs.
func (a fixAPI) start(path string, noWait bool, diffs int) error {
	body, err := a.call(http.MethodPost, path)
	if err != nil {
		return err
	}
	var run runDoc
	if err := json.Unmarshal(body, &run); err != nil {
		return fmt.Errorf("unreadable answer: %w", err)
	}
	if run.ID == "" || noWait { // nothing selected, or not following
		if a.raw {
			_, err = a.out.Write(body)
			return err
		}
		return printRun(a.out, body)
	}
	fmt.Fprintf(a.log, "run %s started; snapshot %s\n", run.ID, run.Snapshot)
	follow := "/v1/fix/runs?" + url.Values{"run": {run.ID}, "diffs": {fmt.Sprint(diffs)}}.Encode()
	for last := -1; ; time.Sleep(200 * time.Millisecond) { // polling the run's progress
		if body, err = a.call(http.MethodGet, follow); err != nil {
			return err
		}
		if err := json.Unmarshal(body, &run); err != nil {
			return fmt.Errorf("unreadable answer: %w", err)
		}
		if done := run.Players - run.Pending; done != last {
			fmt.Fprintf(a.log, "  %d of %d players handled\n", done, run.Players)
			last = done
		}
		if run.Status != "running" {
			break
		}
	}
	if a.raw {
		_, err = a.out.Write(body)
		return err
	}
	if err := printRun(a.out, body); err != nil {
		return err
	}
	if run.Status != "done" {
		return fmt.Errorf("run %s ended %s: %s", run.ID, run.Status, run.Error)
	}
	return nil
}

// The host's answers, as far as hotctl prints them.
type (
	change struct {
		Field         string
		Before, After any
	}
	total struct {
		Field     string
		Players   int
		BeforeSum json.RawMessage `json:"before_sum"`
		AfterSum  json.RawMessage `json:"after_sum"`
	}
	playerChanges struct {
		ID      uint64
		Changes []change
		Note    string
	}
	failure struct {
		ID    uint64
		Error string
	}
	runDoc struct {
		ID, Fix, Version, Doc, File, Selection, Status, Error, Snapshot, Who string
		Started, Ended                                                       time.Time
		Resumes, Players, Applied, Unchanged, Skipped, Failed, Pending       int
		Failures                                                             []failure
		Totals                                                               []total
		Diffs                                                                []playerChanges
		Undo                                                                 *struct {
			At                                 time.Time
			Who                                string
			Force                              bool
			Restored, Already, Forced, Missing int
			Conflicts                          []struct {
				ID      uint64
				Changes []change `json:"changed_since"`
			}
		}
	}
)

func (c change) String() string {
	return fmt.Sprintf("%s: %s -> %s", c.Field, show(c.Before), show(c.After))
}

func show(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("%q", x)
	case float64: // JSON numbers: integers print without an exponent
		if x == float64(int64(x)) {
			return fmt.Sprint(int64(x))
		}
	}
	return fmt.Sprint(v)
}

func (t total) String() string {
	if len(t.BeforeSum) == 0 {
		return fmt.Sprintf("%s: %d players", t.Field, t.Players)
	}
	return fmt.Sprintf("%s: %d players, total %s -> %s", t.Field, t.Players, t.BeforeSum, t.AfterSum)
}

func printChanges(w io.Writer, players []playerChanges) {
	for _, p := range players {
		fmt.Fprintf(w, "player %d\n", p.ID)
		for _, c := range p.Changes {
			fmt.Fprintf(w, "  %s\n", c)
		}
	}
}

func printTotals(w io.Writer, totals []total) {
	if len(totals) == 0 {
		return
	}
	fmt.Fprintln(w, "totals:")
	for _, t := range totals {
		fmt.Fprintf(w, "  %s\n", t)
	}
}

func printFailures(w io.Writer, fails []failure) {
	for _, f := range fails {
		fmt.Fprintf(w, "failed player %d: %s\n", f.ID, f.Error)
	}
}

// printDryRun prints POST /v1/fix/dry-run's answer: each player's
// changes, then the counts and the totals.
func printDryRun(w io.Writer, body []byte) error {
	var d struct {
		Fix, Version, Doc, Selection, Took  string
		Looked                              int `json:"looked_at"`
		Changed, Unchanged, Skipped, Failed int
		Totals                              []total
		Players                             []playerChanges
		Failures                            []failure
		Complete                            bool
	}
	if err := json.Unmarshal(body, &d); err != nil {
		return fmt.Errorf("dry-run: unreadable answer: %w", err)
	}
	fmt.Fprintf(w, "DRY RUN of %s %s: nothing was changed\n", d.Fix, d.Version)
	if d.Doc != "" {
		fmt.Fprintf(w, "%s\n", d.Doc)
	}
	fmt.Fprintf(w, "selection: %s\n", d.Selection)
	printChanges(w, d.Players)
	if len(d.Players) < d.Changed {
		fmt.Fprintf(w, "(%d of %d players listed)\n", len(d.Players), d.Changed)
	}
	printFailures(w, d.Failures)
	fmt.Fprintf(w, "looked at %d players: %d would change, %d unchanged, %d not selected, %d failed (took %s)\n",
		d.Looked, d.Changed, d.Unchanged, d.Skipped, d.Failed, d.Took)
	if !d.Complete {
		fmt.Fprintln(w, "INCOMPLETE: stopped by the deadline; the counts cover the players looked at")
	}
	printTotals(w, d.Totals)
	return nil
}

// printRun prints one run: what, where it stands, its totals and first
// diffs, failures and undo.
func printRun(w io.Writer, body []byte) error {
	var r runDoc
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("unreadable answer: %w", err)
	}
	if r.ID == "" { // nothing selected: the host's message says so
		var m map[string]any
		json.Unmarshal(body, &m)
		fmt.Fprintf(w, "%s %s: %v\n", m["fix"], m["version"], m["status"])
		return nil
	}
	fmt.Fprintf(w, "run %s: %s", r.ID, r.Status)
	if r.Error != "" {
		fmt.Fprintf(w, " (%s)", r.Error)
	}
	fmt.Fprintf(w, "\nfix %s %s from %s\n", r.Fix, r.Version, r.File)
	fmt.Fprintf(w, "selection: %s\nsnapshot taken before: %s\n", r.Selection, r.Snapshot)
	fmt.Fprintf(w, "players %d: applied %d, unchanged %d, skipped %d, failed %d, pending %d\n",
		r.Players, r.Applied, r.Unchanged, r.Skipped, r.Failed, r.Pending)
	printTotals(w, r.Totals)
	printChanges(w, r.Diffs)
	if len(r.Diffs) > 0 && len(r.Diffs) < r.Applied {
		fmt.Fprintf(w, "(%d of %d applied players listed)\n", len(r.Diffs), r.Applied)
	}
	printFailures(w, r.Failures)
	if u := r.Undo; u != nil {
		fmt.Fprintf(w, "undo at %s by %s: restored %d, already %d, forced %d, missing %d, conflicts %d\n",
			u.At.Local().Format(time.DateTime), u.Who, u.Restored, u.Already, u.Forced, u.Missing, len(u.Conflicts))
		for _, c := range u.Conflicts {
			parts := make([]string, len(c.Changes))
			for i, ch := range c.Changes {
				parts[i] = ch.String()
			}
			fmt.Fprintf(w, "  conflict player %d (changed since the fix, left alone): %s\n", c.ID, strings.Join(parts, "; "))
		}
		if len(u.Conflicts) > 0 && !u.Force {
			fmt.Fprintf(w, "  put them back anyway: hotctl fix undo %s -force\n", r.ID)
		}
	}
	return nil
}

// printRuns prints GET /v1/fix/runs as a table, newest first.
func printRuns(w io.Writer, body []byte) error {
	var runs []runDoc
	if err := json.Unmarshal(body, &runs); err != nil {
		return fmt.Errorf("runs: unreadable answer: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTATUS\tFIX\tPLAYERS\tAPPLIED\tPENDING\tFAILED\tUNDONE\tSTARTED")
	for _, r := range runs {
		undone := "-"
		if r.Undo != nil {
			undone = fmt.Sprintf("%d (%d conflicts)", r.Undo.Restored+r.Undo.Forced+r.Undo.Already, len(r.Undo.Conflicts))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%d\t%d\t%d\t%d\t%s\t%s\n", r.ID, r.Status, r.Fix, r.Version,
			r.Players, r.Applied, r.Pending, r.Failed, undone, when(r.Started))
	}
	return tw.Flush()
}
