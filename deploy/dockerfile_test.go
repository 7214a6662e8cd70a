package deploy

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

const dockerfile = "../Dockerfile"

// imageUID is the user the image runs as; the StatefulSet runs its pods as
// the same one.
const imageUID = 10001

// parseDockerfile parses the Dockerfile with BuildKit's own parser and
// instruction checks, failing on any parse warning or lint finding.
func parseDockerfile(t *testing.T) []instructions.Stage {
	t.Helper()
	f, err := os.Open(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("%s: %v", dockerfile, err)
	}
	for _, w := range res.Warnings {
		t.Errorf("%s: %s", dockerfile, w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		t.Errorf("%s: lint %s: %s (at %v)", dockerfile, rule, msg, loc)
	}})
	stages, _, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("%s: %v", dockerfile, err)
	}
	if len(stages) != 2 {
		t.Fatalf("%s: %d stages, want a builder and a runtime stage", dockerfile, len(stages))
	}
	return stages
}

// goToolchain is go.mod's toolchain line without "go" (1.26.8).
func goToolchain(t *testing.T) string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "toolchain go"); ok {
			return v
		}
	}
	t.Fatal("go.mod has no toolchain line")
	return ""
}

// TestDockerfileBuilder checks that the builder stage uses go.mod's Go
// toolchain and that every step that builds is a Makefile target these
// tests run (hostBins), so the image is built the way the tests build.
func TestDockerfileBuilder(t *testing.T) {
	b := parseDockerfile(t)[0]
	if b.Name != "builder" {
		t.Errorf("first stage is %q, want builder (README and docs build plugins with --target builder)", b.Name)
	}
	if want := "golang:" + goToolchain(t) + "-"; !strings.HasPrefix(b.BaseName, want) {
		t.Errorf("builder FROM %s, want %s<debian release>: plugins must be built by go.mod's toolchain", b.BaseName, want)
	}
	var targets []string
	for _, c := range b.Commands {
		run, ok := c.(*instructions.RunCommand)
		if !ok {
			continue
		}
		line := strings.Join(run.CmdLine, " ")
		if line == "go mod download" {
			continue // a cache layer; builds nothing
		}
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "make" || !slices.Contains(imageTargets, f[1]) {
			t.Errorf("builder step %q is not make <target> with a target the tests run (%v)", line, imageTargets)
			continue
		}
		targets = append(targets, f[1])
	}
	if !slices.Contains(targets, "plugins") {
		t.Errorf("the builder never runs make plugins: the image would ship no plugins")
	}
}

// TestDockerfileRuntime checks the runtime stage: the builder's Debian
// release (the glibc the host was linked against), the binaries from the
// builder, the plugin directories the manifests use, the user the
// StatefulSet runs as, and flags the built host accepts.
func TestDockerfileRuntime(t *testing.T) {
	stages := parseDockerfile(t)
	b, r := stages[0], stages[1]
	release := b.BaseName[strings.LastIndex(b.BaseName, "-")+1:]
	if !strings.HasPrefix(r.BaseName, "debian:"+release) {
		t.Errorf("runtime FROM %s, want debian:%s (the builder's release)", r.BaseName, release)
	}
	var copied, dests []string
	var entry, cmd []string
	var user string
	for _, c := range r.Commands {
		switch c := c.(type) {
		case *instructions.CopyCommand:
			if c.From != b.Name {
				t.Errorf("COPY %v does not come from the builder", c.SourcePaths)
			}
			copied = append(copied, c.SourcePaths...)
			dests = append(dests, strings.TrimSuffix(c.DestPath, "/"))
		case *instructions.EntrypointCommand:
			entry = c.CmdLine
		case *instructions.CmdCommand:
			cmd = c.CmdLine
		case *instructions.UserCommand:
			user = c.User
		}
	}
	for _, bin := range []string{"/src/bin/hothost", "/src/bin/hotctl"} {
		if !slices.Contains(copied, bin) {
			t.Errorf("runtime stage does not copy %s from the builder", bin)
		}
	}
	// The init container seeds the volume from here.
	if !slices.Contains(dests, "/opt/hothost/plugins") {
		t.Errorf("runtime stage has no /opt/hothost/plugins (the StatefulSet's seed directory): %v", dests)
	}
	if !slices.Equal(entry, []string{"/usr/local/bin/hothost"}) {
		t.Errorf("ENTRYPOINT %q, want [/usr/local/bin/hothost]", entry)
	}
	if want := fmt.Sprintf("%d:%d", imageUID, imageUID); user != want {
		t.Errorf("USER %q, want %s (the StatefulSet's runAsUser)", user, want)
	}
	flags := checkHostArgs(t, cmd)
	if !slices.Contains(dests, flags["plugins"]) {
		t.Errorf("-plugins %s is not where the image puts the plugins (%v)", flags["plugins"], dests)
	}
}
