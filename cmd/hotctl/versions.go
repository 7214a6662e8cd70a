package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// versionLine is one line of GET /v1/versions. Fields a host does not send
// stay zero and print as "-".
type versionLine struct {
	Module      string    `json:"module"`
	Version     string    `json:"version"`
	File        string    `json:"file"`
	State       string    `json:"state"`
	Reason      string    `json:"reason"`
	Pinned      bool      `json:"pinned"`
	LoadedAt    time.Time `json:"loaded_at"`
	ActivatedAt time.Time `json:"activated_at"`
	ChangedAt   time.Time `json:"changed_at"`
	Crashes     int       `json:"crashes"`
	Loaded      *bool     `json:"loaded"` // nil: a host that does not say
	Calls       int64     `json:"calls"`
	Errors      int64     `json:"errors"`
	Panics      int64     `json:"panics"`
}

// printVersions prints the history as a table, oldest first: what an
// operator reads at 3 a.m. is which version serves, which ones are out of
// service, since when and why.
func printVersions(w io.Writer, body io.Reader) error {
	var lines []versionLine
	if err := json.NewDecoder(body).Decode(&lines); err != nil {
		return fmt.Errorf("versions: unreadable answer: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MODULE\tVERSION\tSTATE\tPIN\tCRASHES\tCALLS/ERR/PANIC\tCHANGED\tREASON")
	for _, l := range lines {
		state := l.State
		if l.Loaded != nil && !*l.Loaded && l.State != "rejected" {
			state += " (not loaded)"
		}
		pin := ""
		if l.Pinned {
			pin = "pinned"
		}
		counters := "-"
		if l.Loaded == nil || *l.Loaded {
			counters = fmt.Sprintf("%d/%d/%d", l.Calls, l.Errors, l.Panics)
		}
		changed := l.ChangedAt
		for _, t := range []time.Time{l.ActivatedAt, l.LoadedAt} {
			if changed.IsZero() {
				changed = t
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", dash(l.Module), dash(l.Version), state, dash(pin),
			l.Crashes, counters, when(changed), strings.ReplaceAll(l.Reason, "\n", " "))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}
