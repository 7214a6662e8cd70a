package loader

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"plugin"
	"strings"
)

// FixPreflightDir starts the name of the folder a repair plugin is linked
// into for its preflight. The child gets nothing but a path (ExecPreflight,
// HOTHOST_PREFLIGHT), and a host's main dispatches only module preflights
// (PreflightMain): the folder is what tells the child that it checks a Fix.
// A fix dropped into the plugin directory by mistake is preflighted as a
// module there, and refused for its missing Module before the host opens it.
const FixPreflightDir = ".fix-preflight"

// A preflight child for a repair plugin is recognised while this package
// initialises, before the binary's main runs, so that every binary that
// already calls PreflightMain (the host, test binaries) checks fixes too,
// unchanged. It never returns in that case.
func init() {
	if path := os.Getenv(EnvPreflight); path != "" && isFixPreflight(path) {
		fixPreflightMain(path)
	}
}

func isFixPreflight(path string) bool {
	return strings.HasPrefix(filepath.Base(filepath.Dir(path)), FixPreflightDir)
}

// execFixPreflight is the default FixOptions.Preflight: ExecPreflight on a
// hard link to the file (a copy where links are refused) in a fresh
// FixPreflightDir folder beside it, removed afterwards.
func execFixPreflight(ctx context.Context, path string) (*PreflightReport, error) {
	dir, err := os.MkdirTemp(filepath.Dir(path), FixPreflightDir+"-*")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPreflight, err)
	}
	defer os.RemoveAll(dir)
	link := filepath.Join(dir, filepath.Base(path))
	if err := os.Link(path, link); err != nil {
		if err := copyFile(path, link); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrPreflight, err)
		}
	}
	return ExecPreflight(ctx, link)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// fixPreflightMain is PreflightMain for a repair plugin: open it, check its
// Fix, run its SelfTest, report on fd 3 and exit.
func fixPreflightMain(path string) {
	rep := fixPreflight(path)
	out := os.NewFile(reportFD, "preflight-report")
	if out == nil {
		out = os.Stdout
	} else if _, err := out.Stat(); err != nil {
		out = os.Stdout
	}
	if err := json.NewEncoder(out).Encode(rep); err != nil {
		fmt.Fprintln(os.Stderr, "fix preflight: write report:", err)
		os.Exit(2)
	}
	if !rep.OK {
		os.Exit(1)
	}
	os.Exit(0)
}

func fixPreflight(path string) *PreflightReport {
	fail := func(err error) *PreflightReport {
		return &PreflightReport{Kind: fixKindOf(err), Error: err.Error()}
	}
	fn, err := parseFileName(filepath.Base(path))
	if err != nil {
		return fail(err)
	}
	p, err := plugin.Open(path)
	if err != nil {
		return fail(explainOpenError(err))
	}
	fix, err := lookupFix(p, fn)
	if err != nil {
		return fail(err)
	}
	rep := &PreflightReport{OK: true, Module: fix.Name, Version: fix.Version, ABI: fix.ABI, SelfTest: "none"}
	if fix.SelfTest != nil {
		if err := runSelfTest(fix.SelfTest); err != nil {
			return fail(err)
		}
		rep.SelfTest = "passed"
	}
	return rep
}
