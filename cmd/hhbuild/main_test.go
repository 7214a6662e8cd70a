package main

import (
	"bytes"
	"log/slog"
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

// corpus is the host's runtime corpus: coin versions that misbehave at run
// time (host/testdata/runtime/README.md).
func corpus(t *testing.T, name string) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "host", "testdata", "runtime", name))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("%s holds %d files after a refused build", dir, len(ents))
	}
}

// TestRefusesDescriptorMismatch: a -version or -name that is not the
// descriptor's (here version = "0.0.0" in version.go, name "coin") is
// refused before anything is built, naming both and where the descriptor
// sets its value; the loader would have rejected the .so only later.
func TestRefusesDescriptorMismatch(t *testing.T) {
	src := corpus(t, "slow")
	out := t.TempDir()
	_, err := build(config{src: src, name: "coin", version: "0.0.1", out: out})
	want := `refused: -version 0.0.1 differs from the descriptor's Version "0.0.0" (` + src + `/main.go:17:11): the loader would reject the .so; make them equal`
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	assertEmpty(t, out)
	_, err = build(config{src: src, name: "shop", version: "0.0.0", out: out})
	want = `refused: -name shop differs from the descriptor's Name "coin" (` + src + `/main.go:16:11): the loader would reject the .so; make them equal`
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	assertEmpty(t, out)
}

// TestUnsafeSkipVet: a plugin the check refuses (os.Exit in work) is not
// built; with -unsafe-skip-vet it is, with its checksum, and the build says
// loudly that it was not checked.
func TestUnsafeSkipVet(t *testing.T) {
	src := corpus(t, "exit")
	out := t.TempDir()
	_, err := build(config{src: src, name: "coin", version: "0.0.0", out: out})
	want := src + "/main.go:26:2: os.Exit ends the host process: return an error instead"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want a refusal naming %s", err, want)
	}
	assertEmpty(t, out)

	var logged bytes.Buffer
	so, err := build(config{src: src, name: "coin", version: "0.0.0", out: out, skipVet: true,
		log: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if so != filepath.Join(out, "coin-0.0.0.so") {
		t.Fatalf("built %s", so)
	}
	for _, f := range []string{so, so + ".sha256"} {
		if _, err := os.Stat(f); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(logged.String(), "level=WARN msg=\"hhbuild: UNSAFE: -unsafe-skip-vet: the source is NOT checked") {
		t.Fatalf("no loud warning: %q", logged.String())
	}
}

// TestChecksHelperPackages: code in a package of the plugin's own folder is
// checked like the main package (gopanic's helper starts a goroutine), and
// the build warns that such a package cannot change between versions.
func TestChecksHelperPackages(t *testing.T) {
	src := corpus(t, "gopanic")
	out := t.TempDir()
	var logged bytes.Buffer
	_, err := build(config{src: src, name: "coin", version: "0.0.0", out: out,
		log: slog.New(slog.NewTextHandler(&logged, nil))})
	want := "refused: the plugin keeps state or can end the host (docs/ARCHITECTURE.md invariants 8 and 11):\n\t" +
		src + "/helper/helper.go:11:2: go statement: a goroutine outlives the call that started it"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %v, want %s...", err, want)
	}
	assertEmpty(t, out)
	if !strings.Contains(logged.String(), "plugin imports packages of its own folder") ||
		!strings.Contains(logged.String(), "packages=github.com/hothost/hothost/host/testdata/runtime/gopanic/helper") {
		t.Fatalf("no warning about the helper package: %q", logged.String())
	}
}
