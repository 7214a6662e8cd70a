package main

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRuntimeCorpus runs the check over the host's runtime corpus, each a
// coin version that misbehaves at run time, and pins down which of them it
// refuses at build time and why: exit (os.Exit), gopanic (the go statement
// sits in a helper package of the plugin's tree) and mapwrites (its writers
// are goroutines). overflow, hang and slow look like any other code and
// pass: only the host's runtime defences stop them.
func TestRuntimeCorpus(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", "..", "host", "testdata", "runtime"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	refused, err := check(&out, true, root+"/...")
	if err != nil {
		t.Fatal(err)
	}
	const goStmt = "go statement: a goroutine outlives the call that started it, and a panic on it ends the host process (the host recovers panics only on the call's goroutine); plugins must not start goroutines"
	const corpus = "github.com/hothost/hothost/host/testdata/runtime/"
	want := []string{
		"exit: checking " + corpus + "exit",
		"exit/main.go:26:2: os.Exit ends the host process: return an error instead",
		"gopanic: checking " + corpus + "gopanic " + corpus + "gopanic/helper",
		"gopanic/helper/helper.go:11:2: " + goStmt,
		"hang: checking " + corpus + "hang",
		"mapwrites: checking " + corpus + "mapwrites",
		"mapwrites/main.go:31:3: " + goStmt,
		"overflow: checking " + corpus + "overflow",
		"slow: checking " + corpus + "slow",
	}
	got := strings.Split(strings.TrimSuffix(strings.ReplaceAll(out.String(), root+"/", ""), "\n"), "\n")
	if !refused || !slices.Equal(got, want) {
		t.Fatalf("refused %t, output:\n\t%s\nwant:\n\t%s", refused, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// TestCleanPlugins: the example game's plugins pass, and hhvet says
// nothing about them.
func TestCleanPlugins(t *testing.T) {
	var out bytes.Buffer
	refused, err := check(&out, false, "../../plugins/...")
	if err != nil || refused || out.Len() != 0 {
		t.Fatalf("refused %t, err %v, output %q", refused, err, out.String())
	}
}
