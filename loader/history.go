package loader

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	goversion "github.com/hashicorp/go-version"
)

// The history file (Options.HistoryFile) keeps every version decision
// across restarts (invariant 10). Its layout is one header line, then the
// body:
//
//	{"magic":"hothost-versions","format":1,"length":1234,"crc32c":"0badf00d"}
//	{ "versions": [ ... ] }
//
// A reader checks, in this order and each with its own sentinel: the magic
// prefix (ErrHistoryInvalid), the end of the header line
// (ErrHistoryTruncated), the format version (ErrHistoryVersion), the body's
// length (ErrHistoryTruncated), its CRC-32C (ErrHistoryChecksum), and only
// then decodes and validates the entries (ErrHistoryInvalid). The file is
// replaced whole, crash-safely: temporary file in the same directory,
// fsync, rename, fsync of the directory.
//
// A file that fails a check is never fatal: the Loader moves it aside
// (<file>.corrupt-<UTC time>), logs at error level, starts with an empty
// history and reports the cause from HistoryError. Refusing to start would
// turn one bad file into a crash loop of the whole server; starting from
// the plugin directory alone is what a host without history did anyway.
var (
	// ErrHistoryInvalid: the file does not start with the history magic
	// (not a history file, or its first bytes were damaged), its header
	// does not parse, bytes follow the body, or a body whose checksum
	// matches holds an entry that cannot be right (unknown state, bad
	// module name or version).
	ErrHistoryInvalid = errors.New("not a valid version history file")
	// ErrHistoryVersion: the file is a version history of a format this
	// build does not read (written by a newer hothost, say).
	ErrHistoryVersion = errors.New("version history has an unknown format version")
	// ErrHistoryTruncated: the file is empty, or shorter than its header
	// says.
	ErrHistoryTruncated = errors.New("version history file is truncated")
	// ErrHistoryChecksum: the body's CRC-32C differs from the header's:
	// the bytes were changed after they were written.
	ErrHistoryChecksum = errors.New("version history checksum mismatch")
	// ErrHistoryWrite: a change took effect in this process but could not
	// be saved to the history file, so it would not survive a restart.
	ErrHistoryWrite = errors.New("version history not saved")
	// ErrUnknownVersion: MarkBad or RecordCrash named a module version that
	// the history has never loaded.
	ErrUnknownVersion = errors.New("version not in the history")
)

const (
	historyMagic  = "hothost-versions"
	historyFormat = 1
)

// historyPrefix is how every history file starts: the magic, at a fixed
// offset, before anything else is trusted.
var historyPrefix = []byte(`{"magic":"` + historyMagic + `",`)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// historyHeader is the first line. Field order is the wire order: magic
// first, so historyPrefix holds.
type historyHeader struct {
	Magic  string `json:"magic"`
	Format int    `json:"format"`
	Length int    `json:"length"`
	CRC32C string `json:"crc32c"`
}

type historyBody struct {
	Versions []histEntry `json:"versions"`
}

// histEntry is one history line as stored: a version loaded at some time,
// or a file rejected.
type histEntry struct {
	Module      string           `json:"module,omitempty"`
	Version     string           `json:"version,omitempty"`
	File        string           `json:"file"`
	SHA256      string           `json:"sha256,omitempty"`
	PluginPath  string           `json:"plugin_path,omitempty"`
	State       State            `json:"state"`
	Reason      string           `json:"reason,omitempty"`
	ErrKind     string           `json:"error_kind,omitempty"` // a rejection's sentinel, by its text
	Pinned      bool             `json:"pinned,omitempty"`
	LoadedAt    time.Time        `json:"loaded_at,omitzero"`
	ActivatedAt time.Time        `json:"activated_at,omitzero"`
	ChangedAt   time.Time        `json:"changed_at,omitzero"`
	Crashes     int              `json:"crashes,omitempty"`
	LastCrashAt time.Time        `json:"last_crash_at,omitzero"`
	Preflight   *preflightRecord `json:"preflight,omitempty"`
}

// preflightRecord is a preflight's outcome and what it depended on: the
// plugin's bytes (the entry's sha256), the host binary (its Go build id)
// and the build facts compared between them. While all three are the same
// the outcome is too, so a restart does not pay for the child again.
type preflightRecord struct {
	Passed    bool              `json:"passed"`
	At        time.Time         `json:"at"`
	Host      string            `json:"host_build_id,omitempty"`
	GoVersion string            `json:"go_version,omitempty"`
	Settings  map[string]string `json:"settings,omitempty"` // the plugin's, as compareBuild saw them
	Report    *PreflightReport  `json:"report,omitempty"`
	Error     string            `json:"error,omitempty"`
}

// reusable reports whether this passed preflight stands for a file with
// these facts in a host with this build id.
func (p *preflightRecord) reusable(host string, pf buildFacts, fn fileName) bool {
	return p != nil && p.Passed && host != "" && p.Host == host && p.GoVersion == pf.goVersion &&
		maps.Equal(p.Settings, comparedSettings(pf)) && p.Report != nil && p.Report.OK &&
		p.Report.Module == fn.module && p.Report.Version == fn.version
}

// comparedSettings are the plugin's build settings that compareBuild looks at.
func comparedSettings(f buildFacts) map[string]string {
	out := map[string]string{}
	for _, k := range append(append([]string(nil), flagSettings...), valueSettings...) {
		if v, ok := f.settings[k]; ok {
			out[k] = v
		}
	}
	if g := gcflags(f.settings["-gcflags"]); g != "" {
		out["-gcflags"] = g
	}
	return out
}

// pluginPathOf is the plugin path a plugin was built with, which names its
// functions in stack traces. hhbuild passes it as -gcflags=-p=<path>, which
// the build info keeps; "" for a plugin built some other way.
func pluginPathOf(f buildFacts) string {
	for _, flag := range strings.Fields(f.settings["-gcflags"]) {
		if p, ok := strings.CutPrefix(flag, "-p="); ok {
			return p
		}
	}
	return ""
}

// hostBuildID is the running binary's Go build id (as `go tool buildid`
// prints it), which changes with any change to the code linked in. "" when
// it cannot be read: then no preflight is ever reused.
func hostBuildID() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	f, err := elf.Open(exe)
	if err != nil {
		return ""
	}
	defer f.Close()
	s := f.Section(".note.go.buildid")
	if s == nil {
		return ""
	}
	b, err := s.Data()
	if err != nil || len(b) < 16 || string(b[12:16]) != "Go\x00\x00" {
		return ""
	}
	// An ELF note: name size, descriptor size, type, then name and descriptor.
	n := binary.LittleEndian.Uint32(b[4:8])
	if uint64(n) > uint64(len(b)-16) {
		return ""
	}
	return string(b[16 : 16+n])
}

// rejectionKinds are the sentinels a rejection can wrap. A rejection read
// back from the file wraps the same one, so errors.Is works across restarts.
var rejectionKinds = []error{ErrName, ErrChecksum, ErrSignature, ErrNotPlugin, ErrBuildMismatch, ErrDuplicate,
	ErrPreflight, ErrNoDescriptor, ErrDescriptorType, ErrDescriptor, ErrABI, ErrSelfTest, ErrOpen, ErrConflict}

func rejectionKind(err error) string {
	for _, k := range rejectionKinds {
		if errors.Is(err, k) {
			return k.Error()
		}
	}
	return ""
}

// storedError is a rejection read from the history file: its words as they
// were, and the sentinel it wrapped.
type storedError struct {
	msg  string
	kind error
}

func (e *storedError) Error() string { return e.msg }
func (e *storedError) Unwrap() error { return e.kind }

func storedRejection(msg, kind string) error {
	for _, k := range rejectionKinds {
		if k.Error() == kind {
			return &storedError{msg: msg, kind: k}
		}
	}
	return &storedError{msg: msg}
}

var moduleRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// validate refuses an entry no Loader writes.
func (e *histEntry) validate() error {
	switch e.State {
	case StateActive, StateStandby, StateRolledBack, StateBad:
		if !moduleRE.MatchString(e.Module) {
			return fmt.Errorf("module %q is not a module name", e.Module)
		}
		if _, err := goversion.NewSemver(e.Version); err != nil {
			return fmt.Errorf("%s version %q is not semver", e.Module, e.Version)
		}
	case StateRejected:
	default:
		return fmt.Errorf("unknown state %q", e.State)
	}
	if e.File == "" {
		return errors.New("no file")
	}
	if e.SHA256 != "" {
		if b, err := hex.DecodeString(e.SHA256); err != nil || len(b) != 32 {
			return fmt.Errorf("sha256 %.20q is not 64 hex digits", e.SHA256)
		}
	}
	if e.Crashes < 0 {
		return fmt.Errorf("crash count %d", e.Crashes)
	}
	return nil
}

// decodeHistory checks a history file's bytes in a fixed order and returns
// its entries and body. Each failure wraps one sentinel and says what it saw.
func decodeHistory(b []byte) ([]histEntry, []byte, error) {
	if len(b) == 0 {
		return nil, nil, fmt.Errorf("%w: the file is empty", ErrHistoryTruncated)
	}
	if !bytes.HasPrefix(b, historyPrefix) {
		return nil, nil, fmt.Errorf("%w: bad magic: it starts with %.40q, want %q", ErrHistoryInvalid, b, historyPrefix)
	}
	line, body, ok := bytes.Cut(b, []byte("\n"))
	if !ok {
		return nil, nil, fmt.Errorf("%w: the header line has no end (%d bytes)", ErrHistoryTruncated, len(b))
	}
	var h historyHeader
	if err := json.Unmarshal(line, &h); err != nil {
		return nil, nil, fmt.Errorf("%w: header %.120q: %v", ErrHistoryInvalid, line, err)
	}
	if h.Format != historyFormat {
		return nil, nil, fmt.Errorf("%w: format %d, this build reads format %d", ErrHistoryVersion, h.Format, historyFormat)
	}
	switch {
	case len(body) < h.Length:
		return nil, nil, fmt.Errorf("%w: the body has %d bytes, the header says %d", ErrHistoryTruncated, len(body), h.Length)
	case len(body) > h.Length:
		return nil, nil, fmt.Errorf("%w: %d bytes follow the body's %d", ErrHistoryInvalid, len(body)-h.Length, h.Length)
	}
	if sum := fmt.Sprintf("%08x", crc32.Checksum(body, castagnoli)); sum != h.CRC32C {
		return nil, nil, fmt.Errorf("%w: the body's CRC-32C is %s, the header says %q", ErrHistoryChecksum, sum, h.CRC32C)
	}
	var hb historyBody
	if err := json.Unmarshal(body, &hb); err != nil {
		return nil, nil, fmt.Errorf("%w: body: %v", ErrHistoryInvalid, err)
	}
	for i := range hb.Versions {
		if err := hb.Versions[i].validate(); err != nil {
			return nil, nil, fmt.Errorf("%w: entry %d: %v", ErrHistoryInvalid, i, err)
		}
	}
	return hb.Versions, body, nil
}

// encodeHistory is the body of a history file.
func encodeHistory(entries []histEntry) ([]byte, error) {
	return json.MarshalIndent(historyBody{Versions: entries}, "", " ")
}

// writeHistory replaces the file at path with header+body so that a crash
// at any instant leaves either the old file or the new one: temporary file
// in the same directory, fsync, rename, fsync of the directory (without
// which the rename itself may not survive a power loss).
func writeHistory(path string, body []byte) error {
	h, err := json.Marshal(historyHeader{Magic: historyMagic, Format: historyFormat, Length: len(body),
		CRC32C: fmt.Sprintf("%08x", crc32.Checksum(body, castagnoli))})
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(append(append(h, '\n'), body...))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// moveAside renames a history file that cannot be used, so that it is kept
// for a post-mortem and the next write does not destroy it.
func moveAside(path string) (string, error) {
	dst := path + ".corrupt-" + time.Now().UTC().Format("20060102T150405.000000000Z")
	return dst, os.Rename(path, dst)
}
