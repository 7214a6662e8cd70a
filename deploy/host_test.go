package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hothost/hothost/internal/hostproc"
)

// work holds what the tests build (binaries, plugins); removed at the end.
var work string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hothost-deploy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploy tests:", err)
		os.Exit(1)
	}
	work = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// imageTargets are the Makefile targets the Dockerfile's builder stage may
// run: `make plugins` runs `make build` first, and hostBins runs it, so every
// build step of the image is exercised by these tests.
var imageTargets = []string{"build", "plugins"}

var built struct {
	once    sync.Once
	bins    *hostproc.Bins
	plugins string // directory of the example plugins' .so files and sidecars
	err     error
}

// hostBins builds hothost, hotctl, hhbuild and the example plugins once,
// with `make plugins` into the test's work directory: the Makefile's flags,
// the same target the Dockerfile runs.
func hostBins(t *testing.T) (*hostproc.Bins, string) {
	t.Helper()
	built.once.Do(func() {
		root, err := hostproc.ModuleRoot()
		if err != nil {
			built.err = err
			return
		}
		bin, plugins := filepath.Join(work, "bin"), filepath.Join(work, "plugins")
		cmd := exec.Command("make", "--no-print-directory", "-C", root, "plugins", "BIN="+bin, "PLUGIN_OUT="+plugins)
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("make plugins: %v\n%s", err, out)
			return
		}
		built.bins = &hostproc.Bins{Root: root, Dir: bin, Hothost: filepath.Join(bin, "hothost"),
			Hotctl: filepath.Join(bin, "hotctl"), Hhbuild: filepath.Join(bin, "hhbuild")}
		built.plugins = plugins
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bins, built.plugins
}

// startHost starts the built host on its own work directory and shared
// memory directory, with the example plugins installed and args added to
// hostproc's; it is stopped with SIGTERM (and must exit cleanly) at cleanup.
func startHost(t *testing.T, args ...string) *hostproc.Proc {
	t.Helper()
	bins, plugins := hostBins(t)
	dir := t.TempDir()
	pdir := filepath.Join(dir, "plugins-dir")
	if err := os.MkdirAll(pdir, 0o700); err != nil {
		t.Fatal(err)
	}
	sos, err := filepath.Glob(filepath.Join(plugins, "*.so"))
	if err != nil || len(sos) == 0 {
		t.Fatalf("no plugins in %s (%v)", plugins, err)
	}
	for _, so := range sos {
		if err := hostproc.Install(so, pdir); err != nil {
			t.Fatal(err)
		}
	}
	shm, err := os.MkdirTemp("/dev/shm", "hothost-deploy-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	p, err := bins.Start(t.Context(), hostproc.Config{Dir: dir, ShmDir: shm, StateName: "deploy", Capacity: 1000, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("host did not stop cleanly on SIGTERM: %v\n%s", err, p.Log())
		}
	})
	return p
}

// hostFlags lists the flags of the built hothost from its usage, and
// whether each takes a value (Go prints "-name type" for those and "-name"
// alone for booleans).
func hostFlags(t *testing.T) map[string]bool {
	t.Helper()
	bins, _ := hostBins(t)
	out, err := exec.Command(bins.Hothost, "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("hothost -h: %v\n%s", err, out)
	}
	flags := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "  -") {
			continue
		}
		f := strings.Fields(line)
		flags[strings.TrimPrefix(f[0], "-")] = len(f) > 1
	}
	if len(flags) == 0 {
		t.Fatalf("no flags in hothost's usage:\n%s", out)
	}
	return flags
}

// parseHostArgs reads a hothost command line of -name=value, -name value and
// boolean -name arguments into a map, refusing a flag the built host does
// not define and any positional argument.
func parseHostArgs(t *testing.T, args []string) map[string]string {
	t.Helper()
	defined := hostFlags(t)
	got := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			t.Fatalf("argument %q is not a flag (hothost takes none): %q", a, args)
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		takesValue, ok := defined[name]
		if !ok {
			t.Fatalf("hothost has no flag -%s (in %q)", name, args)
		}
		if takesValue && !hasValue {
			if i+1 == len(args) {
				t.Fatalf("flag -%s has no value in %q", name, args)
			}
			i++
			value = args[i]
		}
		got[name] = value
	}
	return got
}

// checkHostArgs parses args as parseHostArgs does, then has the built host
// parse them too: with -h last, the flag package reads every argument (an
// unknown flag or a bad value exits 2 naming it) before it prints the usage
// and exits 0. parseHostArgs refused positional arguments first, so the
// host cannot start serving instead.
func checkHostArgs(t *testing.T, args []string) map[string]string {
	t.Helper()
	flags := parseHostArgs(t, args)
	bins, _ := hostBins(t)
	out, err := exec.Command(bins.Hothost, append(slices.Clone(args), "-h")...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Usage of") {
		t.Fatalf("hothost refuses %q: %v\n%s", args, err, out)
	}
	return flags
}
