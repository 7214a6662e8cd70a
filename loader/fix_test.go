package loader_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/loader"
	"github.com/hothost/hothost/loader/sidecar"
)

// Repair plugins use the versions coinfix 1.0.x here; coin 70.0.0 is a
// module offered as a fix.

func newFixes(t *testing.T, opts loader.FixOptions) *loader.Fixes {
	t.Helper()
	f, err := loader.NewFixes(opts)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestFixOpen: a fix built by hhbuild passes the module checks (checksum,
// build settings, preflight with its SelfTest) and its Apply runs in this
// process; the same bytes under another name are the plugin already open;
// other bytes at a path opened before, a failing SelfTest and a module are
// refused, each with its sentinel, and none of them is opened here.
func TestFixOpen(t *testing.T) {
	so := buildAll(t, spec{tmpl: "fixgood", name: "coinfix", version: "1.0.0"},
		spec{tmpl: "fixself", name: "coinfix", version: "1.0.1"},
		spec{tmpl: "coin", name: "coin", version: "70.0.0"})
	ctx := context.Background()
	fx := newFixes(t, loader.FixOptions{})
	dir := t.TempDir()

	good := install(t, dir, so[0])
	fp, err := fx.Open(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	if fp.Fix.Name != "coinfix" || fp.Fix.Version != "1.0.0" || fp.SelfTest != "passed" || fp.PluginPath == "" || len(fp.SHA256) != 64 {
		t.Fatalf("opened %+v", fp)
	}
	w := &struct{ Coins int64 }{Coins: 5200}
	c := &abi.Call{State: w}
	if !fp.Fix.Select(c) || fp.Fix.Apply(c) != nil || w.Coins != 520 {
		t.Fatalf("the fix's Apply gave %d coins, want 520", w.Coins)
	}
	if leftover, _ := filepath.Glob(filepath.Join(dir, loader.FixPreflightDir+"*")); len(leftover) != 0 {
		t.Fatalf("the preflight link folder stayed: %v", leftover)
	}

	other := filepath.Join(t.TempDir(), "coinfix-1.0.0.so")
	install(t, filepath.Dir(other), so[0])
	if again, err := fx.Open(ctx, other); err != nil || again != fp {
		t.Fatalf("the same bytes elsewhere: %+v, %v; want the plugin already open", again, err)
	}

	b, err := os.ReadFile(so[1])
	if err != nil {
		t.Fatal(err)
	}
	writeWithSidecars(t, dir, "coinfix-1.0.0.so", b, nil)
	if _, err := fx.Open(ctx, good); !errors.Is(err, loader.ErrFixChanged) {
		t.Fatalf("other bytes at an opened path: %v, want ErrFixChanged", err)
	}

	for _, c := range []struct {
		so   string
		want error
	}{{so[1], loader.ErrSelfTest}, {so[2], loader.ErrNoFix}} {
		if _, err := fx.Open(ctx, install(t, t.TempDir(), c.so)); !errors.Is(err, c.want) {
			t.Fatalf("%s: %v, want %v", filepath.Base(c.so), err, c.want)
		}
	}
}

// TestFixRefusedBeforeItRuns: a missing or wrong checksum, a file name
// that is not <name>-<semver>.so, a missing signature when a key is set
// and a build unlike the host's are refused before any of the file's code
// runs, in the host or a child.
func TestFixRefusedBeforeItRuns(t *testing.T) {
	so := buildAll(t, spec{tmpl: "fixgood", name: "coinfix", version: "1.0.2"},
		spec{tmpl: "fixgood", name: "coinfix", version: "1.0.3", flip: []string{"-trimpath"}})
	b, err := os.ReadFile(so[0])
	if err != nil {
		t.Fatal(err)
	}
	preflights := 0
	count := func(ctx context.Context, path string) (*loader.PreflightReport, error) {
		preflights++
		return nil, errors.New("no preflight expected")
	}
	ctx := context.Background()
	fx := newFixes(t, loader.FixOptions{Preflight: count})
	dir := t.TempDir()

	noSum := filepath.Join(dir, "coinfix-1.0.2.so")
	if err := os.WriteFile(noSum, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.Open(ctx, noSum); !errors.Is(err, loader.ErrChecksum) {
		t.Fatalf("no .sha256: %v", err)
	}
	if err := os.WriteFile(noSum+sidecar.SumSuffix, sidecar.FormatSum(sha256Of([]byte("other")), "coinfix-1.0.2.so"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.Open(ctx, noSum); !errors.Is(err, loader.ErrChecksum) {
		t.Fatalf("wrong .sha256: %v", err)
	}
	writeWithSidecars(t, dir, "coinfix.so", b, nil)
	if _, err := fx.Open(ctx, filepath.Join(dir, "coinfix.so")); !errors.Is(err, loader.ErrName) {
		t.Fatalf("no version in the name: %v", err)
	}
	signed := newFixes(t, loader.FixOptions{PublicKey: pubKey, Preflight: count})
	if _, err := signed.Open(ctx, install(t, t.TempDir(), so[0])); !errors.Is(err, loader.ErrSignature) {
		t.Fatalf("unsigned with a key set: %v", err)
	}
	if _, err := fx.Open(ctx, install(t, t.TempDir(), so[1])); !errors.Is(err, loader.ErrBuildMismatch) {
		t.Fatalf("built with -trimpath flipped: %v", err)
	}
	if preflights != 0 {
		t.Fatalf("%d preflights ran for files refused before", preflights)
	}
}

// TestFixSigned: with a key set, a fix signed by the build is opened.
func TestFixSigned(t *testing.T) {
	so := buildAll(t, spec{tmpl: "fixgood", name: "coinfix", version: "1.0.4", key: keyFile})
	fx := newFixes(t, loader.FixOptions{PublicKey: pubKey})
	fp, err := fx.Open(context.Background(), install(t, t.TempDir(), so[0]))
	if err != nil || fp.Fix.Version != "1.0.4" {
		t.Fatalf("signed fix: %+v, %v", fp, err)
	}
}

// TestFixInPluginDir: a fix dropped into the plugin directory is
// preflighted as a module and refused there, never opened by the host.
func TestFixInPluginDir(t *testing.T) {
	so := buildAll(t, spec{tmpl: "fixgood", name: "coinfix", version: "1.0.5"})
	l := newLoader(t, loader.Options{})
	install(t, l.Dir(), so[0])
	if err := poll(t, l); !errors.Is(err, loader.ErrNoDescriptor) {
		t.Fatalf("a fix in the plugin directory: %v, want ErrNoDescriptor", err)
	}
	if vi, _ := info(l, "coinfix", "1.0.5"); vi.State != loader.StateRejected || vi.Loaded {
		t.Fatalf("history: %+v", vi)
	}
}
