package stateless_test

import (
	"cmp"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hothost/hothost/stateless"
)

const treePkg = "github.com/hothost/hothost/stateless/testdata/tree/plugin"

func loadOne(t *testing.T, pattern string) *stateless.Plugin {
	t.Helper()
	plugins, err := stateless.Load(nil, pattern)
	if err != nil {
		t.Fatal(err)
	}
	if len(plugins) != 1 {
		t.Fatalf("%s: %d plugins, want 1", pattern, len(plugins))
	}
	return plugins[0]
}

func abs(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(rel)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTree: the packages of the plugin's own folder that it imports, even
// through another, are checked and named by file:line:col; the package
// shared from outside the folder and the one in the folder that the plugin
// does not import are not.
func TestTree(t *testing.T) {
	p := loadOne(t, "./testdata/tree/plugin")
	want := []string{treePkg, treePkg + "/helper", treePkg + "/helper/deep"}
	if !slices.Equal(p.Tree, want) {
		t.Fatalf("tree %q, want %q", p.Tree, want)
	}
	if p.Dir != abs(t, "testdata/tree/plugin") || p.PkgPath != treePkg {
		t.Fatalf("plugin at %s (%s)", p.Dir, p.PkgPath)
	}
	findings, err := p.Vet()
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(findings))
	for i, f := range findings {
		got[i] = f.String()
	}
	dir := abs(t, "testdata/tree/plugin")
	wantF := []string{
		filepath.Join(dir, "helper/deep/deep.go") + ":9:3: log.Fatalf ends the host process (it calls os.Exit after logging): return an error instead",
		filepath.Join(dir, "helper/helper.go") + ":9:2: go statement: a goroutine outlives the call that started it, and a panic on it ends the host process (the host recovers panics only on the call's goroutine); plugins must not start goroutines",
		filepath.Join(dir, "main.go") + ":18:5: package-level variable calls is state kept between calls; plugins must be stateless (use a const, a local, or the player's state)",
	}
	if !slices.Equal(got, wantF) {
		t.Fatalf("findings:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(wantF, "\n\t"))
	}
}

// TestLoadPicksMains: a pattern over many packages yields the main ones
// only; one with none is ErrNoPlugin; code that does not compile is
// ErrCompile, naming the error.
func TestLoadPicksMains(t *testing.T) {
	plugins, err := stateless.Load(nil, "./testdata/tree/...")
	if err != nil {
		t.Fatal(err)
	}
	if len(plugins) != 1 || plugins[0].PkgPath != treePkg {
		t.Fatalf("%d plugins (first %+v), want only %s", len(plugins), plugins[0], treePkg)
	}
	if _, err := stateless.Load(nil, "./testdata/tree/shared"); !errors.Is(err, stateless.ErrNoPlugin) {
		t.Fatalf("a shared package loaded as a plugin: %v", err)
	}
	_, err = stateless.Load(nil, "./testdata/broken")
	if !errors.Is(err, stateless.ErrCompile) || !strings.Contains(err.Error(), "main.go:3:15: undefined: undefinedCall") {
		t.Fatalf("broken plugin: %v", err)
	}
	if _, err := stateless.Load(nil, "./testdata/nosuchdir"); err == nil {
		t.Fatal("a missing directory loaded")
	}
}

// TestDescriptor: the Name and Version a build checks are read from
// literals, constants, positional literals and init assignments, of a
// Module or a repair plugin's Fix (not both), at the
// place that sets them last; anything that is not a constant is
// ErrDescriptor, saying where.
func TestDescriptor(t *testing.T) {
	plugins, err := stateless.Load(nil, "./testdata/desc/...")
	if err != nil {
		t.Fatal(err)
	}
	byCase := map[string]*stateless.Plugin{}
	for _, p := range plugins {
		byCase[filepath.Base(p.Dir)] = p
	}
	for _, c := range []struct {
		name, wantKind, wantName, wantVersion, versionAt, err string
	}{
		{name: "literal", wantName: "coin", wantVersion: "1.0.0", versionAt: "main.go:5:48"},
		{name: "constant", wantName: "coin", wantVersion: "1.2.0", versionAt: "main.go:9:11"},
		{name: "positional", wantName: "coin", wantVersion: "2.0.0", versionAt: "main.go:5:33"},
		{name: "initfield", wantName: "coin", wantVersion: "1.0.1", versionAt: "main.go:9:19"},
		{name: "initwhole", wantName: "shop", wantVersion: "", versionAt: "main.go:8:11"},
		{name: "unset", wantName: "", wantVersion: "", versionAt: "main.go:5:5"},
		{name: "call", err: `Module.Version at ` + abs(t, "testdata/desc/call/main.go") + `:9:48 is os.Getenv("VERSION"), not a constant string`},
		{name: "opassign", err: `Module.Version at ` + abs(t, "testdata/desc/opassign/main.go") + `:7:15: it is assigned by Module.Version += ...`},
		{name: "nodesc", err: "package github.com/hothost/hothost/stateless/testdata/desc/nodesc declares no var Module of type abi.Module"},
		{name: "fix", wantKind: "Fix", wantName: "coinfix", wantVersion: "1.0.2", versionAt: "main.go:8:16"},
		{name: "both", err: "declares both a Module and a Fix"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := byCase[c.name]
			if p == nil {
				t.Fatalf("case %s not loaded", c.name)
			}
			d, err := p.Descriptor()
			if c.err != "" {
				if !errors.Is(err, stateless.ErrDescriptor) || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %+v, %v; want ErrDescriptor: %s", d, err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := cmp.Or(c.wantKind, "Module"); d.Kind != want {
				t.Fatalf("descriptor kind %q, want %q", d.Kind, want)
			}
			at := filepath.Join(p.Dir, c.versionAt)
			if d.Name != c.wantName || d.Version != c.wantVersion || d.VersionPos.String() != at {
				t.Fatalf("got %q %q at %s, want %q %q at %s", d.Name, d.Version, d.VersionPos, c.wantName, c.wantVersion, at)
			}
		})
	}
}
