package loader

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. A rejection wraps exactly one of them, with the details
// (file, what differs, what the child printed) in the message, so the host
// can branch with errors.Is and the operator reads the real cause.
var (
	// ErrName: the file name is not <module>-<semver>.so.
	ErrName = errors.New("bad plugin file name")
	// ErrChecksum: the .sha256 sidecar is malformed or does not match the
	// file once the file has stopped changing.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrSignature: a public key is configured and the .sig is missing,
	// malformed or does not verify.
	ErrSignature = errors.New("bad or missing signature")
	// ErrNotPlugin: the file is not a Go plugin at all (no readable ELF or
	// Go build info: random bytes, a truncated file).
	ErrNotPlugin = errors.New("not a Go plugin")
	// ErrBuildMismatch: the plugin was built with another Go version or
	// other build settings (-race, -trimpath, CGO_ENABLED, GOOS/GOARCH,
	// shared module versions) than the host; Go would refuse it with a
	// message naming a package instead of the cause.
	ErrBuildMismatch = errors.New("plugin built differently from this host")
	// ErrDuplicate: this module version is already loaded (or was marked
	// bad) from another file.
	ErrDuplicate = errors.New("module version already seen")
	// ErrPreflight: the preflight child crashed, exited or hung before
	// reporting; typically an init that panics, calls os.Exit or never
	// returns.
	ErrPreflight = errors.New("preflight failed")
	// ErrNoDescriptor: the plugin exports no Module symbol.
	ErrNoDescriptor = errors.New("plugin has no Module descriptor")
	// ErrDescriptorType: the Module symbol is not an abi.Module.
	ErrDescriptorType = errors.New("plugin's Module has the wrong type")
	// ErrDescriptor: the descriptor is inconsistent (name or version differ
	// from the file name, no handlers, a nil handler).
	ErrDescriptor = errors.New("bad Module descriptor")
	// ErrABI: the plugin's ABI constraint excludes this host's abi.Version
	// (or does not parse).
	ErrABI = errors.New("ABI constraint excludes this host")
	// ErrSelfTest: the plugin's SelfTest returned an error or panicked.
	ErrSelfTest = errors.New("self-test failed")
	// ErrOpen: plugin.Open failed in the host.
	ErrOpen = errors.New("plugin.Open failed")
	// ErrConflict: the plugin handles a message another module owns.
	ErrConflict = errors.New("message owned by another module")
	// ErrUnknownMessage: no active version handles the message.
	ErrUnknownMessage = errors.New("unknown message")
	// ErrPanic: a handler panicked; the call returns a *PanicError.
	ErrPanic = errors.New("handler panicked")
	// ErrNotLoaded: Activate or Pin named a version that is not loaded.
	ErrNotLoaded = errors.New("version not loaded")
	// ErrNoPrevious: Rollback found no earlier version to restore.
	ErrNoPrevious = errors.New("no previous version to roll back to")
	// ErrPinned: the module is pinned to another version; Unpin it first.
	ErrPinned = errors.New("module is pinned")
)

// kinds name the sentinels in a preflight report (JSON cannot carry errors).
var kinds = map[string]error{
	"name":            ErrName,
	"no-descriptor":   ErrNoDescriptor,
	"descriptor-type": ErrDescriptorType,
	"descriptor":      ErrDescriptor,
	"abi":             ErrABI,
	"selftest":        ErrSelfTest,
	"open":            ErrOpen,
	"build":           ErrBuildMismatch,
}

func kindOf(err error) string {
	for k, s := range kinds {
		if errors.Is(err, s) {
			return k
		}
	}
	return "preflight"
}

func errOfKind(kind, msg string) error {
	if s, ok := kinds[kind]; ok {
		// msg came from an error wrapping s already: say it once.
		return fmt.Errorf("%w: %s", s, strings.TrimPrefix(msg, s.Error()+": "))
	}
	return fmt.Errorf("%w: %s", ErrPreflight, msg)
}

// PanicError is what Entry.Call returns when a handler panics.
type PanicError struct {
	Module, Version, Msg string
	Value                any    // what the handler panicked with
	Stack                []byte // the handler goroutine's stack at the panic
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("handler %s of %s %s panicked: %v", e.Msg, e.Module, e.Version, e.Value)
}

// Unwrap makes errors.Is(err, ErrPanic) true.
func (e *PanicError) Unwrap() error { return ErrPanic }
