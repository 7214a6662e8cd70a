package loader_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"

	"github.com/hothost/hothost/loader"
	"github.com/hothost/hothost/loader/sidecar"
)

var (
	hhbuild string // the build tool, built once in TestMain
	genDir  string // generated plugin sources (inside the module)
	outDir  string // built plugins; tests copy them into their own watched dirs
	keyFile string // private key for signed builds; pubKey is its public half
	pubKey  ed25519.PublicKey
	// hostSettings are this test binary's build settings: plugins are
	// built like it, and the mismatch corpus built unlike it.
	hostSettings = map[string]string{}
)

func TestMain(m *testing.M) {
	// The test binary is also the preflight child (see loader.PreflightMain).
	if loader.IsPreflight() {
		loader.PreflightMain()
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "hothost-loader-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	// Sources must be inside the module to import abi: a testdata folder is
	// skipped by ./... but builds by path.
	genDir, err = os.MkdirTemp("testdata", "gen-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(genDir)
	outDir = filepath.Join(tmp, "out")
	hhbuild = filepath.Join(tmp, "hhbuild")
	if out, err := exec.Command("go", "build", "-o", hhbuild, "github.com/hothost/hothost/cmd/hhbuild").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build hhbuild: %v\n%s", err, out)
		return 1
	}
	keyPrefix := filepath.Join(tmp, "test")
	if err := sidecar.GenerateKey(keyPrefix); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	keyFile = keyPrefix + ".key"
	if pubKey, err = sidecar.ReadPublicKey(keyPrefix + ".pub"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintln(os.Stderr, "test binary has no build info")
		return 1
	}
	for _, s := range bi.Settings {
		hostSettings[s.Key] = s.Value
	}
	return m.Run()
}

// spec is one plugin build. All tests share one process, and Go loads a
// plugin path only once per process, so each test uses its own versions:
// swap coin 1.0.0/2.0.0; corpus coin 3.0.0 and 9.x; half-written coin 5.0.0
// and shop 1.0.0; pin coin 6.x, shop and thief 6.0.0; benchmarks bench
// 1.0.0 and coin 100.0.x.
type spec struct {
	tmpl, name, version string
	key                 string   // private key file, or ""
	noVet               bool     // for the bad corpus: build what hhvet refuses
	flip                []string // build settings to flip against the host: "-race", "-trimpath"
}

func (s spec) file() string { return s.name + "-" + s.version + ".so" }

var (
	builtMu sync.Mutex
	built   = map[string]string{} // by fmt.Sprint(spec)
)

// buildAll builds the specs with hhbuild, three at a time, and returns the
// paths of the .so files (each with its sidecars next to it).
func buildAll(tb testing.TB, specs ...spec) []string {
	tb.Helper()
	paths := make([]string, len(specs))
	errs := make([]error, len(specs))
	sem := make(chan struct{}, 3)
	var wg sync.WaitGroup
	for i, s := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			paths[i], errs[i] = buildOne(s)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
	return paths
}

func buildOne(s spec) (string, error) {
	builtMu.Lock()
	p, ok := built[fmt.Sprint(s)]
	builtMu.Unlock()
	if ok {
		return p, nil
	}
	src, err := genSource(s)
	if err != nil {
		return "", err
	}
	// Every spec builds into its own folder. Two specs of one template and
	// version would have one plugin path: the tests never load both.
	out := filepath.Join(outDir, fmt.Sprintf("%s_%s_%s_%t", s.tmpl, s.version, strings.Join(s.flip, ""), s.key != ""))
	args := []string{"-src", src, "-name", s.name, "-version", s.version, "-out", out}
	if s.key != "" {
		args = append(args, "-key", s.key)
	}
	if s.noVet {
		args = append(args, "-unsafe-skip-vet")
	}
	cmd := exec.Command(hhbuild, args...)
	if len(s.flip) == 0 {
		// Build exactly like this test binary, whatever flags it had.
		exe, err := os.Executable()
		if err != nil {
			return "", err
		}
		cmd.Args = append(cmd.Args, "-like", exe)
	} else {
		cmd.Env = append(os.Environ(), "GOFLAGS="+flippedFlags(s.flip))
	}
	res, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("hhbuild %s: %v\n%s", strings.Join(args, " "), err, res)
	}
	p = filepath.Join(out, s.file())
	builtMu.Lock()
	built[fmt.Sprint(s)] = p
	builtMu.Unlock()
	return p, nil
}

// flippedFlags are this binary's -race/-trimpath with the named ones flipped.
func flippedFlags(flip []string) string {
	var flags []string
	for _, f := range []string{"-race", "-trimpath"} {
		on := hostSettings[f] == "true"
		for _, x := range flip {
			if x == f {
				on = !on
			}
		}
		if on {
			flags = append(flags, f)
		}
	}
	return strings.Join(flags, " ")
}

// genSource writes the template's .go files plus version.go to a fresh folder.
func genSource(s spec) (string, error) {
	dir := filepath.Join(genDir, fmt.Sprintf("%s_%s_%s", s.tmpl, s.version, strings.Join(s.flip, "")))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmpl := filepath.Join("testdata", "plugins", s.tmpl)
	ents, err := os.ReadDir(tmpl)
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		if e.Name() == "version.go" || !strings.HasSuffix(e.Name(), ".go") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(tmpl, e.Name()))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			return "", err
		}
	}
	v := fmt.Sprintf("package main\n\nconst version = %q\n", s.version)
	return dir, os.WriteFile(filepath.Join(dir, "version.go"), []byte(v), 0o644)
}

// install copies a built plugin into dir the way a deploy would: the .so
// (and .sig) renamed into place, then the .sha256.
func install(tb testing.TB, dir, so string) string {
	tb.Helper()
	dst := filepath.Join(dir, filepath.Base(so))
	for _, suffix := range []string{sidecar.SigSuffix, "", sidecar.SumSuffix} {
		b, err := os.ReadFile(so + suffix)
		if os.IsNotExist(err) && suffix == sidecar.SigSuffix {
			continue
		}
		if err != nil {
			tb.Fatal(err)
		}
		if err := sidecar.WriteFileAtomic(dst+suffix, b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dst
}

// writeWithSidecars writes data as dir/base with a matching .sha256 (and a
// valid .sig when key is set): for files that are not what they claim.
func writeWithSidecars(tb testing.TB, dir, base string, data []byte, key ed25519.PrivateKey) {
	tb.Helper()
	path := filepath.Join(dir, base)
	if err := sidecar.WriteFileAtomic(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	sum, err := sidecar.FileSum(path)
	if err != nil {
		tb.Fatal(err)
	}
	if key != nil {
		if err := sidecar.WriteFileAtomic(path+sidecar.SigSuffix, sidecar.Sign(key, base, sum), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	if err := sidecar.WriteFileAtomic(path+sidecar.SumSuffix, sidecar.FormatSum(sum, base), 0o644); err != nil {
		tb.Fatal(err)
	}
}

func newLoader(tb testing.TB, opts loader.Options) *loader.Loader {
	tb.Helper()
	if opts.Dir == "" {
		opts.Dir = tb.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(tb.Output(), nil))
	}
	l, err := loader.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

func poll(tb testing.TB, l *loader.Loader) error {
	tb.Helper()
	return l.Poll(context.Background())
}

// info returns the history line of module@version (the last one).
func info(l *loader.Loader, module, version string) (loader.VersionInfo, bool) {
	var out loader.VersionInfo
	found := false
	for _, vi := range l.Versions() {
		if vi.Module == module && vi.Version == version {
			out, found = vi, true
		}
	}
	return out, found
}

func copyFile(tb testing.TB, src, dst string) {
	tb.Helper()
	in, err := os.Open(src)
	if err != nil {
		tb.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		tb.Fatal(err)
	}
	if err := out.Close(); err != nil {
		tb.Fatal(err)
	}
}

func sha256Of(b []byte) [32]byte { return sha256.Sum256(b) }
