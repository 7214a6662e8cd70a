package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSourceHash: the plugin path's hash changes with any source byte or
// file name, and not otherwise.
func TestSourceHash(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("main.go", "package main\n")
	h1, err := sourceHash(dir)
	if err != nil {
		t.Fatal(err)
	}
	if h2, _ := sourceHash(dir); h2 != h1 {
		t.Fatal("hash not stable")
	}
	write("main.go", "package main // edited\n")
	h3, _ := sourceHash(dir)
	write("main.go", "package main\n")
	write("extra.go", "package main\n")
	h4, _ := sourceHash(dir)
	if h3 == h1 || h4 == h1 || h3 == h4 {
		t.Fatalf("hashes do not follow the sources: %s %s %s", h1[:8], h3[:8], h4[:8])
	}
}

// TestRefusesBadArguments: names and versions that the loader could not
// parse are refused before anything is built.
func TestRefusesBadArguments(t *testing.T) {
	for _, c := range []struct {
		cfg  config
		want string
	}{
		{config{src: "x", name: "Coin", version: "1.0.0", out: "o"}, "-name"},
		{config{src: "x", name: "coin-x", version: "1.0.0", out: "o"}, "-name"},
		{config{src: "x", name: "coin", version: "one", out: "o"}, "not semver"},
		{config{name: "coin", version: "1.0.0", out: "o"}, "required"},
	} {
		if _, err := build(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error about %s", c.cfg, err, c.want)
		}
	}
	if got := sanitize("1.2.3-rc.1+b"); got != "1_2_3_rc_1_b" {
		t.Errorf("sanitize: %q", got)
	}
}
