package main

import (
	"flag"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
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
		{[]string{"dashboard", "extra"}, 2, "usage: hotctl dashboard"},
		{[]string{"dashboard"}, 1, "is hothost running with its admin socket at " + sock},
	} {
		_, stderr, code := hotctl(t, append([]string{"-socket", sock}, c.args...)...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("hotctl %q: exit %d, stderr %q; want exit %d and %q", c.args, code, stderr, c.code, c.want)
		}
	}
}
