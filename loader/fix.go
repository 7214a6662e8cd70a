package loader

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"plugin"
	"strings"
	"sync"
	"time"

	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/loader/sidecar"
)

// Repair plugins (abi.Fix) are opened here with the checks of a module
// version: a <name>-<semver>.so file, its .sha256 sidecar, its .sig when a
// key is configured, build settings equal to the host's, a preflight child
// that opens it first and runs its SelfTest, then plugin.Open in the host
// and the descriptor checked against the file name and the host's ABI. A
// fix never enters the handler table: the host runs it through its admin
// API, one player at a time.

var (
	// ErrNoFix: the plugin exports no Fix symbol (a module, or nothing).
	ErrNoFix = errors.New("plugin has no Fix descriptor")
	// ErrFixDescriptor: the Fix symbol is not an abi.Fix, or is
	// inconsistent (name or version differ from the file name, no Apply).
	ErrFixDescriptor = errors.New("bad Fix descriptor")
	// ErrFixChanged: a fix file the host opened before has other bytes now.
	// Go would silently hand back the plugin it opened first, so a new
	// build needs a new version (a new file name).
	ErrFixChanged = errors.New("fix file changed since the host opened it")
)

// fixKinds name the fix sentinels in a preflight report, beside kinds.
var fixKinds = map[string]error{"no-fix": ErrNoFix, "fix-descriptor": ErrFixDescriptor}

func fixKindOf(err error) string {
	for k, s := range fixKinds {
		if errors.Is(err, s) {
			return k
		}
	}
	return kindOf(err)
}

func fixErrOfKind(kind, msg string) error {
	if s, ok := fixKinds[kind]; ok {
		return fmt.Errorf("%w: %s", s, strings.TrimPrefix(msg, s.Error()+": "))
	}
	return errOfKind(kind, msg)
}

// FixOptions configure Fixes. Zero values get the defaults noted.
type FixOptions struct {
	// PublicKey, when set, makes a valid <file>.sig mandatory.
	PublicKey ed25519.PublicKey
	// Preflight checks a fix before the host opens it. The default
	// re-executes this binary as a preflight child (ExecPreflight) on a
	// link to the file in a FixPreflightDir folder beside it, which tells
	// the child to check a Fix rather than a Module.
	Preflight func(ctx context.Context, path string) (*PreflightReport, error)
	// PreflightTimeout bounds one preflight (default 10s).
	PreflightTimeout time.Duration
}

// Fixes opens repair plugins for a host and remembers them: Go opens a
// plugin path once per process and returns the first plugin for any later
// open of it, so a file opened once is answered from memory, the same
// bytes under another name are the plugin already open, and a file whose
// bytes changed is refused (ErrFixChanged). All methods are safe for
// concurrent use.
type Fixes struct {
	opts FixOptions
	host buildFacts

	mu     sync.Mutex // one open at a time: each may start a child
	bySum  map[[32]byte]*fixResult
	byPath map[string][32]byte
}

type fixResult struct {
	fix *FixPlugin
	err error // a failure once its code ran: the same bytes fail the same way
}

// FixPlugin is an opened, checked repair plugin.
type FixPlugin struct {
	Fix        *abi.Fix
	File       string // the path it was first opened from
	SHA256     string // of the .so, hex
	PluginPath string // the plugin path it was built with
	SelfTest   string // "passed" or "none", from its preflight
}

// NewFixes returns a Fixes comparing plugins with this binary's build.
func NewFixes(opts FixOptions) (*Fixes, error) {
	host, err := hostFacts()
	if err != nil {
		return nil, fmt.Errorf("loader: %w", err)
	}
	if opts.PreflightTimeout <= 0 {
		opts.PreflightTimeout = 10 * time.Second
	}
	if opts.Preflight == nil {
		opts.Preflight = execFixPreflight
	}
	if opts.PublicKey != nil && len(opts.PublicKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("loader: PublicKey has %d bytes, want %d", len(opts.PublicKey), ed25519.PublicKeySize)
	}
	return &Fixes{opts: opts, host: host, bySum: map[[32]byte]*fixResult{}, byPath: map[string][32]byte{}}, nil
}

// Open checks the repair plugin at path and opens it, or returns the one
// opened before from the same bytes. Every refusal wraps one sentinel
// (ErrName, ErrChecksum, ErrSignature, ErrNotPlugin, ErrBuildMismatch,
// ErrPreflight, ErrSelfTest, ErrOpen, ErrNoFix, ErrFixDescriptor, ErrABI,
// ErrFixChanged) and names the file.
func (f *Fixes) Open(ctx context.Context, path string) (*FixPlugin, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	base := filepath.Base(path)
	fn, sum, err := f.checkFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", base, err)
	}
	if prev, ok := f.byPath[path]; ok && prev != sum {
		return nil, fmt.Errorf("%w: %s had sha256 %x when first opened, now %x; build it as a new version",
			ErrFixChanged, base, prev[:8], sum[:8])
	}
	if r := f.bySum[sum]; r != nil {
		f.byPath[path] = sum
		return r.fix, r.err
	}
	if f.opts.PublicKey != nil {
		sig, err := os.ReadFile(path + sidecar.SigSuffix)
		if err != nil {
			return nil, fmt.Errorf("%w: %s is unsigned (no %s) and this host requires signed plugins", ErrSignature, base, sidecar.SigSuffix)
		}
		if err := sidecar.Verify(f.opts.PublicKey, base, sum, sig); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrSignature, base, err)
		}
	}
	pf, err := pluginFacts(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", base, err)
	}
	if err := compareBuild(f.host, pf); err != nil {
		return nil, fmt.Errorf("%s: %w", base, err)
	}
	// From here on the file's code runs, first in the child: whatever
	// happens is the answer for these bytes from now on.
	fp, err := f.open(ctx, path, fn, pf)
	if err != nil {
		err = fmt.Errorf("%s: %w", base, err)
	} else {
		fp.SHA256 = hex.EncodeToString(sum[:])
	}
	f.bySum[sum], f.byPath[path] = &fixResult{fix: fp, err: err}, sum
	return fp, err
}

// checkFile checks what can be checked without reading the code: a
// regular file named <name>-<semver>.so whose .sha256 sidecar matches.
func (f *Fixes) checkFile(path string) (fileName, [32]byte, error) {
	var sum [32]byte
	st, err := os.Lstat(path)
	if err != nil {
		return fileName{}, sum, fmt.Errorf("%w: %v", ErrNotPlugin, err)
	}
	if !st.Mode().IsRegular() {
		return fileName{}, sum, fmt.Errorf("%w: not a regular file (%v)", ErrName, st.Mode().Type())
	}
	fn, err := parseFileName(filepath.Base(path))
	if err != nil {
		return fileName{}, sum, err
	}
	b, err := os.ReadFile(path + sidecar.SumSuffix)
	if errors.Is(err, fs.ErrNotExist) {
		return fileName{}, sum, fmt.Errorf("%w: no %s beside it (hhbuild writes one)", ErrChecksum, sidecar.SumSuffix)
	}
	if err != nil {
		return fileName{}, sum, fmt.Errorf("%w: %v", ErrChecksum, err)
	}
	want, err := sidecar.ParseSum(b)
	if err != nil {
		return fileName{}, sum, fmt.Errorf("%w: %s: %v", ErrChecksum, sidecar.SumSuffix, err)
	}
	if sum, err = sidecar.FileSum(path); err != nil {
		return fileName{}, sum, fmt.Errorf("%w: %v", ErrNotPlugin, err)
	}
	if sum != want {
		return fileName{}, sum, fmt.Errorf("%w: the file has sha256 %x, its sidecar says %x", ErrChecksum, sum[:8], want[:8])
	}
	return fn, sum, nil
}

// open preflights the file, then opens it in this process.
func (f *Fixes) open(ctx context.Context, path string, fn fileName, pf buildFacts) (*FixPlugin, error) {
	pctx, cancel := context.WithTimeout(ctx, f.opts.PreflightTimeout)
	rep, err := f.opts.Preflight(pctx, path)
	cancel()
	if err == nil && rep == nil {
		err = fmt.Errorf("%w: %v", ErrPreflight, errNoReport)
	}
	if err != nil {
		return nil, fmt.Errorf("preflight: %w", err)
	}
	if !rep.OK {
		return nil, fmt.Errorf("preflight: %w", fixErrOfKind(rep.Kind, rep.Error))
	}
	p, err := plugin.Open(path)
	if err != nil {
		return nil, explainOpenError(err)
	}
	fix, err := lookupFix(p, fn)
	if err != nil {
		return nil, err
	}
	return &FixPlugin{Fix: fix, File: path, PluginPath: pluginPathOf(pf), SelfTest: rep.SelfTest}, nil
}

// lookupFix finds and checks the Fix symbol of an opened plugin; the
// preflight child and the host run the same code.
func lookupFix(p *plugin.Plugin, fn fileName) (*abi.Fix, error) {
	sym, err := p.Lookup(abi.FixSymbol)
	if err != nil {
		if _, merr := p.Lookup(abi.Symbol); merr == nil {
			return nil, fmt.Errorf("%w: it exports a Module: a handler module goes in the plugin directory, not to hotctl fix", ErrNoFix)
		}
		return nil, fmt.Errorf("%w: %v", ErrNoFix, err)
	}
	return checkFix(sym, fn)
}

// checkFix checks a Fix symbol against the file name and the host's ABI,
// with the checks of a Module's descriptor.
func checkFix(sym any, fn fileName) (*abi.Fix, error) {
	fix, ok := sym.(*abi.Fix)
	if !ok {
		return nil, fmt.Errorf("%w: Fix is a %T, want abi.Fix (declare var Fix = abi.Fix{...})", ErrFixDescriptor, sym)
	}
	if fix.Apply == nil {
		return nil, fmt.Errorf("%w: Apply is nil", ErrFixDescriptor)
	}
	// The same name, version and ABI rules as a module's: checked by the
	// module check itself, on a module made of the fix's Apply.
	as := &abi.Module{Name: fix.Name, Version: fix.Version, ABI: fix.ABI, Handlers: map[string]abi.Handler{"apply": fix.Apply}}
	if _, err := checkModule(as, fn); err != nil {
		if errors.Is(err, ErrDescriptor) {
			return nil, fmt.Errorf("%w: %s", ErrFixDescriptor, strings.TrimPrefix(err.Error(), ErrDescriptor.Error()+": "))
		}
		return nil, err
	}
	return fix, nil
}
