// Command hhbuild builds one hothost plugin version:
//
//	hhbuild -src plugins/coin -name coin -version 1.2.0 -out plugins.d [-key build.key] [-like bin/hothost]
//	hhbuild -keygen build          # writes build.key (private, 0600) and build.pub
//
// It first checks the plugin's source (package stateless) and refuses it,
// naming file and line, if any package of the plugin's own tree keeps state
// or can end the host (os.Exit, log.Fatal, goroutines...), or if the
// descriptor's Name and Version differ from -name and -version (the loader
// would reject such a .so, and a host restarted on it would serve without
// the module). -unsafe-skip-vet skips these checks, loudly: only test
// corpora of deliberately bad plugins need it. Then it runs
//
//	go build -buildmode=plugin -ldflags=-pluginpath=X -gcflags=-p=X -o OUT/<name>-<version>.so SRC
//
// where X is unique per name, version and source hash: Go refuses a second
// plugin with the same plugin path ("plugin already loaded"), and -p must
// match -pluginpath or symbols are not found (FIELD-NOTES). Build flags are
// inherited from the environment (GOFLAGS, CGO_ENABLED: the Makefile exports
// the one set); -like BIN copies -race, -trimpath and CGO_ENABLED from BIN's
// build info instead, so a plugin always matches the host it is built for.
//
// The .so is written to a temporary file and renamed into place, then its
// sidecars: <file>.sig (when -key is given) before the .so, <file>.sha256
// last, since the loader considers a file only once its checksum is there.
package main

import (
	"bytes"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/hashicorp/go-version"
	"github.com/hothost/hothost/loader/sidecar"
	"github.com/hothost/hothost/stateless"
)

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

type config struct {
	src, name, version, out, key, like string
	skipVet, force                     bool
	log                                *slog.Logger // nil: slog.Default()
}

func main() {
	var c config
	var keygen string
	flag.StringVar(&c.src, "src", "", "plugin source directory (a main package)")
	flag.StringVar(&c.name, "name", "", "module name: lower case letters, digits, _")
	flag.StringVar(&c.version, "version", "", "semver of this build; must equal the descriptor's Version")
	flag.StringVar(&c.out, "out", "", "directory to write <name>-<version>.so and its sidecars to")
	flag.StringVar(&c.key, "key", "", "ed25519 private key file (from -keygen): also write a .sig")
	flag.StringVar(&c.like, "like", "", "host binary whose -race, -trimpath and CGO_ENABLED to copy")
	flag.BoolVar(&c.skipVet, "unsafe-skip-vet", false, "build without checking the source (state, process-ending calls, descriptor); only for test corpora of deliberately bad plugins")
	vetFlag := flag.Bool("vet", true, "deprecated: -vet=false is -unsafe-skip-vet")
	flag.BoolVar(&c.force, "force", false, "replace an existing output file (never do this in a watched directory)")
	flag.StringVar(&keygen, "keygen", "", "write a new key pair PREFIX.key and PREFIX.pub and exit")
	flag.Parse()
	if !*vetFlag {
		slog.Warn("hhbuild: -vet=false is deprecated: use -unsafe-skip-vet")
		c.skipVet = true
	}
	if keygen != "" {
		if err := sidecar.GenerateKey(keygen); err != nil {
			fatal(err)
		}
		fmt.Printf("wrote %s.key (keep private; give to hhbuild -key) and %s.pub (give to the host)\n", keygen, keygen)
		return
	}
	file, err := build(c)
	if err != nil {
		fatal(err)
	}
	fmt.Println(file)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "hhbuild:", err)
	os.Exit(1)
}

func build(c config) (string, error) {
	if c.src == "" || c.name == "" || c.version == "" || c.out == "" {
		return "", errors.New("-src, -name, -version and -out are required")
	}
	if !nameRE.MatchString(c.name) {
		return "", fmt.Errorf("-name %q: want lower case letters, digits and _, starting with a letter", c.name)
	}
	if _, err := version.NewSemver(c.version); err != nil {
		return "", fmt.Errorf("-version %q is not semver: %w", c.version, err)
	}
	pattern := c.src
	if !filepath.IsAbs(pattern) && !strings.HasPrefix(pattern, ".") {
		pattern = "./" + pattern
	}
	env := os.Environ()
	if c.like != "" {
		var err error
		if env, err = likeHost(env, c.like); err != nil {
			return "", err
		}
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.skipVet {
		c.log.Warn("hhbuild: UNSAFE: -unsafe-skip-vet: the source is NOT checked; this plugin may keep state, end the host process or carry a descriptor the loader rejects. Never deploy it.",
			"src", c.src, "name", c.name, "version", c.version)
	} else if err := vet(c.log, pattern, env, c.name, c.version); err != nil {
		return "", err
	}
	hash, err := sourceHash(c.src)
	if err != nil {
		return "", err
	}
	// The plugin path names the build: readable, and unique per source.
	ppath := fmt.Sprintf("hothostplugin/%s_%s_%s", c.name, sanitize(c.version), hash[:16])

	base := c.name + "-" + c.version + ".so"
	final := filepath.Join(c.out, base)
	if _, err := os.Stat(final); err == nil && !c.force {
		return "", fmt.Errorf("%s exists: a new build needs a new version (a path the host has opened is never opened again)", final)
	}
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(c.out, "."+base+".tmp-*")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())

	cmd := exec.Command("go", "build", "-buildmode=plugin",
		"-ldflags=-pluginpath="+ppath, "-gcflags=-p="+ppath, "-o", tmp.Name(), pattern)
	cmd.Env = env
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w", c.src, err)
	}
	sum, err := sidecar.FileSum(tmp.Name())
	if err != nil {
		return "", err
	}
	if c.key != "" {
		key, err := sidecar.ReadPrivateKey(c.key)
		if err != nil {
			return "", err
		}
		if err := sidecar.WriteFileAtomic(final+sidecar.SigSuffix, sidecar.Sign(key, base, sum), 0o644); err != nil {
			return "", err
		}
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return "", err
	}
	if err := sidecar.WriteFileAtomic(final+sidecar.SumSuffix, sidecar.FormatSum(sum, base), 0o644); err != nil {
		return "", err
	}
	return final, nil
}

// vet refuses the plugin if the analyzer reports anything in its tree, or
// if its descriptor's Name or Version is not name and version.
func vet(log *slog.Logger, pattern string, env []string, name, ver string) error {
	plugins, err := stateless.Load(env, pattern)
	if err != nil {
		return err
	}
	if len(plugins) != 1 {
		return fmt.Errorf("%s holds %d plugins (main packages); build one at a time", pattern, len(plugins))
	}
	p := plugins[0]
	if len(p.Tree) > 1 {
		// Only the main package gets a plugin path of its own; a helper
		// keeps its import path in every version.
		log.Warn("hhbuild: the plugin imports packages of its own folder; Go loads one copy of a package per process, so a later version whose copy differs fails to load (\"plugin was built with a different version of package\"): keep code that changes between versions in the main package",
			"packages", strings.Join(p.Tree[1:], " "))
	}
	findings, err := p.Vet()
	if err != nil {
		return err
	}
	if len(findings) > 0 {
		msgs := make([]string, len(findings))
		for i, f := range findings {
			msgs[i] = f.String()
		}
		return fmt.Errorf("refused: the plugin keeps state or can end the host (docs/ARCHITECTURE.md invariants 8 and 11):\n\t%s", strings.Join(msgs, "\n\t"))
	}
	d, err := p.Descriptor()
	if err != nil {
		return fmt.Errorf("refused: cannot check -name and -version against the descriptor: %w", err)
	}
	if d.Name != name {
		return fmt.Errorf("refused: -name %s differs from the descriptor's Name %q (%s): the loader would reject the .so; make them equal", name, d.Name, d.NamePos)
	}
	if dv, err := version.NewSemver(d.Version); err != nil || !dv.Equal(version.Must(version.NewSemver(ver))) {
		return fmt.Errorf("refused: -version %s differs from the descriptor's Version %q (%s): the loader would reject the .so; make them equal", ver, d.Version, d.VersionPos)
	}
	return nil
}

// sourceHash hashes the names and contents of the regular files in dir.
func sourceHash(dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, e := range ents { // ReadDir sorts by name
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", e.Name(), len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func sanitize(s string) string {
	var b bytes.Buffer
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// likeHost returns env with GOFLAGS and CGO_ENABLED changed to build like
// the binary at path: the -race and -trimpath settings and CGO_ENABLED are
// what makes Go refuse a plugin with "different version of package ...".
func likeHost(env []string, path string) ([]string, error) {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("-like %s: %w", path, err)
	}
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return nil, fmt.Errorf("go env GOVERSION: %w", err)
	}
	if got := strings.TrimSpace(string(out)); got != bi.GoVersion {
		return nil, fmt.Errorf("-like %s: the host was built with %s, this go command is %s", path, bi.GoVersion, got)
	}
	set := map[string]string{}
	for _, s := range bi.Settings {
		set[s.Key] = s.Value
	}
	var flags []string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GOFLAGS="); ok {
			for _, f := range strings.Fields(v) {
				if !strings.HasPrefix(f, "-race") && !strings.HasPrefix(f, "-trimpath") && !strings.HasPrefix(f, "-tags") {
					flags = append(flags, f)
				}
			}
		}
	}
	if set["-race"] == "true" {
		flags = append(flags, "-race")
	}
	if set["-trimpath"] == "true" {
		flags = append(flags, "-trimpath")
	}
	if tags := set["-tags"]; tags != "" { // build tags choose files: the game's state type, say
		flags = append(flags, "-tags="+tags)
	}
	cgo := set["CGO_ENABLED"]
	if cgo == "" {
		cgo = "0"
	}
	return setEnv(setEnv(env, "GOFLAGS", strings.Join(flags, " ")), "CGO_ENABLED", cgo), nil
}

func setEnv(env []string, key, val string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+val)
}
