package loader

import (
	"debug/buildinfo"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime/debug"
	"sort"
	"strings"

	goversion "github.com/hashicorp/go-version"
	"github.com/hothost/hothost/abi"
)

var fileRE = regexp.MustCompile(`^([a-z][a-z0-9_]*)-(.+)\.so$`)

// fileName is what a plugin's file name says: <module>-<semver>.so.
type fileName struct {
	module, version string
	sem             *goversion.Version
}

func parseFileName(base string) (fileName, error) {
	m := fileRE.FindStringSubmatch(base)
	if m == nil {
		return fileName{}, fmt.Errorf("%w: %q is not <module>-<semver>.so (module: lower case letters, digits, _)", ErrName, base)
	}
	sem, err := goversion.NewSemver(m[2])
	if err != nil {
		return fileName{}, fmt.Errorf("%w: %q: version %q is not semver", ErrName, base, m[2])
	}
	return fileName{module: m[1], version: m[2], sem: sem}, nil
}

// hostABI is abi.Version, parsed once; a plugin's constraint is checked on it.
var hostABI = goversion.Must(goversion.NewSemver(abi.Version))

// checkModule checks the looked-up Module symbol against the file name and
// the host's ABI. The preflight child and the host run the same code.
func checkModule(sym any, fn fileName) (*abi.Module, error) {
	m, ok := sym.(*abi.Module)
	if !ok {
		return nil, fmt.Errorf("%w: Module is a %T, want abi.Module (declare var Module = abi.Module{...})", ErrDescriptorType, sym)
	}
	if m.Name != fn.module {
		return nil, fmt.Errorf("%w: descriptor names module %q, the file name %q", ErrDescriptor, m.Name, fn.module)
	}
	sem, err := goversion.NewSemver(m.Version)
	if err != nil {
		return nil, fmt.Errorf("%w: descriptor version %q is not semver", ErrDescriptor, m.Version)
	}
	if !sem.Equal(fn.sem) {
		return nil, fmt.Errorf("%w: descriptor says version %s, the file name %s", ErrDescriptor, m.Version, fn.version)
	}
	c, err := goversion.NewConstraint(m.ABI)
	if err != nil {
		return nil, fmt.Errorf("%w: ABI constraint %q does not parse: %v", ErrABI, m.ABI, err)
	}
	if !c.Check(hostABI) {
		return nil, fmt.Errorf("%w: the plugin needs ABI %q, this host has ABI %s", ErrABI, m.ABI, abi.Version)
	}
	if len(m.Handlers) == 0 {
		return nil, fmt.Errorf("%w: no handlers", ErrDescriptor)
	}
	for msg, h := range m.Handlers {
		if h == nil {
			return nil, fmt.Errorf("%w: handler for %q is nil", ErrDescriptor, msg)
		}
	}
	return m, nil
}

// buildFacts is the part of a binary's build info that must match between
// host and plugin for Go to load the plugin.
type buildFacts struct {
	goVersion string
	mainPath  string
	settings  map[string]string
	deps      map[string]string // module path -> version (or replacement)
}

func factsOf(bi *debug.BuildInfo) buildFacts {
	f := buildFacts{goVersion: bi.GoVersion, mainPath: bi.Main.Path,
		settings: map[string]string{}, deps: map[string]string{}}
	for _, s := range bi.Settings {
		f.settings[s.Key] = s.Value
	}
	for _, d := range bi.Deps {
		v := d.Version
		if d.Replace != nil {
			v = "=> " + d.Replace.Path + " " + d.Replace.Version
		}
		f.deps[d.Path] = v
	}
	return f
}

// hostFacts reads the running binary's build info.
func hostFacts() (buildFacts, error) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return buildFacts{}, fmt.Errorf("this binary has no Go build info; cannot compare plugins' build settings with it")
	}
	return factsOf(bi), nil
}

// pluginFacts reads a plugin file's build info without running any of it.
func pluginFacts(path string) (f buildFacts, err error) {
	defer func() {
		// debug/elf has panicked on hostile input before; a bad file must
		// never take the host down.
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: reading its build info panicked: %v", ErrNotPlugin, r)
		}
	}()
	if err := checkELF(path); err != nil {
		return buildFacts{}, err
	}
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return buildFacts{}, fmt.Errorf("%w: cannot read Go build info: %v", ErrNotPlugin, err)
	}
	if mode := bi.Settings; !hasSetting(mode, "-buildmode", "plugin") {
		return buildFacts{}, fmt.Errorf("%w: built with -buildmode=%s, not plugin", ErrNotPlugin, setting(mode, "-buildmode"))
	}
	return factsOf(bi), nil
}

func hasSetting(s []debug.BuildSetting, k, v string) bool { return setting(s, k) == v }

func setting(s []debug.BuildSetting, k string) string {
	for _, x := range s {
		if x.Key == k {
			return x.Value
		}
	}
	return ""
}

// Build settings that change the code of packages shared with the host.
// Boolean flags are absent when false.
var flagSettings = []string{"-race", "-msan", "-asan", "-trimpath"}
var valueSettings = []string{"-compiler", "CGO_ENABLED", "GOOS", "GOARCH", "GOAMD64", "GOARM", "GOARM64",
	"GO386", "GOMIPS", "GOMIPS64", "GOPPC64", "GORISCV64", "GOWASM", "-tags"}

// compareBuild names every difference that would make Go refuse the plugin,
// in words ("built with -race; this host was not").
func compareBuild(host, plug buildFacts) error {
	var diffs []string
	if host.goVersion != plug.goVersion {
		diffs = append(diffs, fmt.Sprintf("built with %s; this host with %s", plug.goVersion, host.goVersion))
	}
	for _, k := range flagSettings {
		h, p := host.settings[k] == "true", plug.settings[k] == "true"
		switch {
		case p && !h:
			diffs = append(diffs, fmt.Sprintf("built with %s; this host was not", k))
		case h && !p:
			diffs = append(diffs, fmt.Sprintf("built without %s; this host was built with it", k))
		}
	}
	for _, k := range valueSettings {
		if h, p := host.settings[k], plug.settings[k]; h != p {
			diffs = append(diffs, fmt.Sprintf("built with %s=%q; this host with %s=%q", k, p, k, h))
		}
	}
	if h, p := gcflags(host.settings["-gcflags"]), gcflags(plug.settings["-gcflags"]); h != p {
		diffs = append(diffs, fmt.Sprintf("built with -gcflags=%q; this host with %q", p, h))
	}
	var mods []string
	for path, pv := range plug.deps {
		if hv, ok := host.deps[path]; ok && hv != pv {
			mods = append(mods, fmt.Sprintf("uses %s %s; this host has %s", path, pv, hv))
		}
	}
	sort.Strings(mods)
	diffs = append(diffs, mods...)
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrBuildMismatch, strings.Join(diffs, "; "))
}

// gcflags drops the -p=<plugin path> every plugin build adds.
func gcflags(s string) string {
	var keep []string
	for _, f := range strings.Fields(s) {
		if !strings.HasPrefix(f, "-p=") {
			keep = append(keep, f)
		}
	}
	return strings.Join(keep, " ")
}

// explainOpenError turns Go's plugin.Open message into a cause when it can.
func explainOpenError(err error) error {
	msg := err.Error()
	if strings.Contains(msg, "different version of package") {
		return fmt.Errorf("%w: %s (a package shared with the host changed: rebuild host and plugins together)", ErrBuildMismatch, msg)
	}
	return fmt.Errorf("%w: %s", ErrOpen, msg)
}

// checkELF tells random bytes from a damaged or truncated ELF file, which
// debug/buildinfo reports alike ("unrecognized file format").
func checkELF(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotPlugin, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotPlugin, err)
	}
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil || string(magic[:]) != elf.ELFMAG {
		return fmt.Errorf("%w: not an ELF file (it starts with %q)", ErrNotPlugin, magic[:])
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return fmt.Errorf("%w: damaged or truncated ELF file (%d bytes): %v", ErrNotPlugin, st.Size(), err)
	}
	defer ef.Close()
	for _, s := range ef.Sections {
		if s.Type != elf.SHT_NOBITS && s.Offset+s.FileSize > uint64(st.Size()) {
			return fmt.Errorf("%w: truncated ELF file: section %s ends at byte %d, the file has %d",
				ErrNotPlugin, s.Name, s.Offset+s.FileSize, st.Size())
		}
	}
	for _, p := range ef.Progs {
		if p.Off+p.Filesz > uint64(st.Size()) {
			return fmt.Errorf("%w: truncated ELF file: a segment ends at byte %d, the file has %d",
				ErrNotPlugin, p.Off+p.Filesz, st.Size())
		}
	}
	return nil
}
