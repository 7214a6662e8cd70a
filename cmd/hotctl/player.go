package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"
)

// playerCmd runs `hotctl player <id>` (the player's state and pending
// timers), `hotctl player export <id> [-o file]` and
// `hotctl player import <file> [-id N] [-replace]`: one player moved
// between hosts (or kept aside by support) as a JSON document. All go
// through the admin API, so all are in the host's audit log. It returns
// the exit code.
func playerCmd(args []string, a *adminClient, stdout, stderr io.Writer) int {
	switch args[0] {
	case "export":
		return exportCmd(args[1:], a, stdout, stderr)
	case "import":
		return importCmd(args[1:], a, stdout, stderr)
	}
	return showCmd(args, a, time.Now(), stdout, stderr)
}

// showCmd prints the player's state as the host decodes it, then its
// pending timers, the earliest first.
func showCmd(args []string, a *adminClient, now time.Time, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: hotctl player <id>")
		return 2
	}
	q := "?" + url.Values{"id": {args[0]}}.Encode()
	doc, err := a.call("GET", "/v1/player"+q, nil)
	var timers []byte
	if err == nil {
		timers, err = a.call("GET", "/v1/player/timers"+q, nil)
	}
	if err == nil {
		stdout.Write(doc)
		err = printTimers(stdout, timers, now)
	}
	if err != nil {
		fmt.Fprintln(stderr, "hotctl player:", err)
		return 1
	}
	return 0
}

// printTimers writes the host's answer to GET /v1/player/timers as a
// table: id, due time (and how far off), message, args.
func printTimers(w io.Writer, answer []byte, now time.Time) error {
	var doc struct {
		Timers []struct {
			ID   string    `json:"id"`
			Due  time.Time `json:"due"`
			Msg  string    `json:"msg"`
			Args string    `json:"args"`
		} `json:"timers"`
	}
	if err := json.Unmarshal(answer, &doc); err != nil {
		return fmt.Errorf("reading the timers: %w", err)
	}
	if len(doc.Timers) == 0 {
		_, err := fmt.Fprintln(w, "timers: none pending")
		return err
	}
	fmt.Fprintf(w, "timers: %d pending\n", len(doc.Timers))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDUE\tIN\tMESSAGE\tARGS")
	for _, t := range doc.Timers {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\n", t.ID, t.Due.Local().Format("2006-01-02 15:04:05.000"),
			t.Due.Sub(now).Round(time.Millisecond), t.Msg, t.Args)
	}
	return tw.Flush()
}

func exportCmd(args []string, a *adminClient, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("hotctl player export", flag.ContinueOnError)
	flags.SetOutput(stderr)
	out := flags.String("o", "", "write the document to this file (mode 0600) instead of stdout")
	flags.Usage = func() { fmt.Fprintln(stderr, "usage: hotctl player export <id> [-o file]"); flags.PrintDefaults() }
	pos, err := parseInterleaved(flags, args)
	if code, done := usageError(flags, stderr, err, len(pos) == 1); done {
		return code
	}
	doc, err := a.call("GET", "/v1/player/export?"+url.Values{"id": {pos[0]}}.Encode(), nil)
	if err == nil && *out != "" {
		err = writeFileAtomic(*out, doc)
	} else if err == nil {
		_, err = stdout.Write(doc)
	}
	if err != nil {
		fmt.Fprintln(stderr, "hotctl player export:", err)
		return 1
	}
	if *out != "" {
		fmt.Fprintf(stderr, "player %s written to %s\n", pos[0], *out)
	}
	return 0
}

func importCmd(args []string, a *adminClient, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("hotctl player import", flag.ContinueOnError)
	flags.SetOutput(stderr)
	id := flags.Uint64("id", 0, "import as this player (default: the id in the document)")
	replace := flags.Bool("replace", false, "overwrite the player if it exists")
	flags.Usage = func() {
		fmt.Fprintln(stderr, `usage: hotctl player import <file> [-id N] [-replace]   ("-" reads stdin)`)
		flags.PrintDefaults()
	}
	pos, err := parseInterleaved(flags, args)
	if code, done := usageError(flags, stderr, err, len(pos) == 1); done {
		return code
	}
	var doc []byte
	if pos[0] == "-" {
		doc, err = io.ReadAll(os.Stdin)
	} else {
		doc, err = os.ReadFile(pos[0])
	}
	if err != nil {
		fmt.Fprintln(stderr, "hotctl player import:", err)
		return 1
	}
	q := url.Values{}
	if *id == 0 { // name the player in the request, so the audit line does
		var d struct {
			ID uint64 `json:"id"`
		}
		if json.Unmarshal(doc, &d) == nil && d.ID != 0 {
			*id = d.ID
		}
	}
	if *id != 0 {
		q.Set("id", strconv.FormatUint(*id, 10))
	}
	if *replace {
		q.Set("replace", "1")
	}
	rep, err := a.call("POST", "/v1/player/import?"+q.Encode(), bytes.NewReader(doc))
	if err != nil {
		fmt.Fprintln(stderr, "hotctl player import:", err)
		return 1
	}
	stdout.Write(rep)
	return 0
}

// usageError handles a parse error or a wrong argument count: done is
// true when the command should stop, with code as its exit code.
func usageError(flags *flag.FlagSet, stderr io.Writer, err error, argsOK bool) (code int, done bool) {
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0, true
	case err != nil:
		return 2, true // the flag package printed the error and the usage
	case !argsOK:
		flags.Usage()
		return 2, true
	}
	return 0, false
}

// parseInterleaved parses flags wherever they stand among the positional
// arguments (`import f.json -replace` as well as `import -replace f.json`):
// the flag package alone stops at the first word that is not a flag.
func parseInterleaved(flags *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := flags.Parse(args); err != nil {
			return nil, err
		}
		if flags.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, flags.Arg(0))
		args = flags.Args()[1:]
	}
}

// writeFileAtomic writes b to path (mode 0600: a player's data) through a
// temporary file renamed over it, so a reader never sees half a document.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a successful rename there is nothing left to remove
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
