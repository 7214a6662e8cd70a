package main

import (
	"flag"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseInterleaved(t *testing.T) {
	for _, args := range [][]string{
		{"f.json", "-id", "8", "-replace"},
		{"-replace", "f.json", "-id", "8"},
		{"-id", "8", "-replace", "f.json"},
	} {
		flags := flag.NewFlagSet("t", flag.ContinueOnError)
		flags.SetOutput(io.Discard)
		id := flags.Uint64("id", 0, "")
		replace := flags.Bool("replace", false, "")
		pos, err := parseInterleaved(flags, args)
		if err != nil || !slices.Equal(pos, []string{"f.json"}) || *id != 8 || !*replace {
			t.Errorf("parseInterleaved(%q) = %q %v, id %d replace %v", args, pos, err, *id, *replace)
		}
	}
}

// Mistakes in the command line are reported before any host is asked:
// none runs here.
func TestPlayerAndDashboardUsageErrors(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "admin.sock")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"player", "export"}, 2, "usage: hotctl player export <id> [-o file]"},
		{[]string{"player", "export", "1", "2"}, 2, "usage: hotctl player export"},
		{[]string{"player", "import"}, 2, "usage: hotctl player import <file>"},
		{[]string{"player", "import", "f.json", "-id", "x"}, 2, `invalid value "x" for flag -id`},
		{[]string{"player", "import", filepath.Join(t.TempDir(), "missing.json")}, 1, "no such file or directory"},
		{[]string{"player", "7", "8"}, 2, "usage: hotctl player <id>"},
		{[]string{"player", "7"}, 1, "is hothost running with its admin socket at " + sock},
		{[]string{"dashboard", "extra"}, 2, "usage: hotctl dashboard"},
		{[]string{"dashboard"}, 1, "is hothost running with its admin socket at " + sock},
	} {
		_, stderr, code := hotctl(t, append([]string{"-socket", sock}, c.args...)...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("hotctl %q: exit %d, stderr %q; want exit %d and %q", c.args, code, stderr, c.code, c.want)
		}
	}
}

func TestPrintTimers(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var out strings.Builder
	answer := `{"id": 7, "timers": [
	 {"id": "281474993487873", "due": "2026-11-30T12:00:30Z", "msg": "house_built", "args": ""},
	 {"id": "16777217", "due": "2026-11-30T11:59:58.5Z", "msg": "ring", "args": "a b"}]}`
	if err := printTimers(&out, []byte(answer), now); err != nil {
		t.Fatal(err)
	}
	due := func(d time.Duration) []string {
		return strings.Fields(now.Add(d).Local().Format("2006-01-02 15:04:05.000"))
	}
	want := [][]string{
		{"timers:", "2", "pending"},
		{"ID", "DUE", "IN", "MESSAGE", "ARGS"},
		append(append([]string{"281474993487873"}, due(30*time.Second)...), "30s", "house_built"),
		append(append([]string{"16777217"}, due(-1500*time.Millisecond)...), "-1.5s", "ring", "a", "b"),
	}
	var got [][]string
	for line := range strings.Lines(out.String()) {
		got = append(got, strings.Fields(line))
	}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("printTimers wrote\n%s\nwant the words %q", out.String(), want)
	}
	out.Reset()
	if err := printTimers(&out, []byte(`{"id": 7, "timers": []}`), now); err != nil || out.String() != "timers: none pending\n" {
		t.Errorf("no timers: %q %v", out.String(), err)
	}
	if err := printTimers(&out, []byte("<html>"), now); err == nil {
		t.Error("an unreadable answer was printed")
	}
}
