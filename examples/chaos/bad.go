package main

import (
	"crypto/rand"
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hothost/hothost/internal/hostproc"
	"github.com/hothost/hothost/loader/sidecar"
)

// badPlugin is one file of the bad-plugin storm.
type badPlugin struct {
	what     string // what is wrong with it
	version  string
	tmpl     string // loader/testdata/plugins/<tmpl>, or "coin" for the game's coin v2 source
	flipTrim bool   // build with the opposite of the host's -trimpath
	mangle   string // "garbage", "truncate", "badsum": done to the built file
	file     string // the .so to drop in
}

func badCorpus() []*badPlugin {
	return []*badPlugin{
		{what: "garbage bytes", version: "9.0.1", mangle: "garbage"},
		{what: "truncated .so", version: "9.0.2", tmpl: "coin", mangle: "truncate"},
		{what: "sha256 mismatch", version: "9.0.3", tmpl: "coin", mangle: "badsum"},
		{what: "no descriptor", version: "9.0.4", tmpl: "nodesc"},
		{what: "descriptor of the wrong type", version: "9.0.5", tmpl: "wrongtype"},
		{what: "ABI range excludes the host", version: "9.0.6", tmpl: "abirange"},
		{what: "-trimpath unlike the host's", version: "9.0.8", tmpl: "coin", flipTrim: true},
		{what: "init panics", version: "9.0.9", tmpl: "initpanic"},
		{what: "init calls os.Exit", version: "9.0.10", tmpl: "initexit"},
		{what: "init hangs", version: "9.0.11", tmpl: "inithang"},
		{what: "self-test fails", version: "9.0.12", tmpl: "selftest"},
	}
}

// buildBad builds (and then damages) the corpus with hhbuild, from sources
// generated under examples/chaos/testdata (inside the module, so they can
// import abi and the game), removed afterwards.
func (e *env) buildBad(ps []*badPlugin) error {
	gen := filepath.Join(e.bins.Root, "examples", "chaos", "testdata", fmt.Sprintf("gen-%d", os.Getpid()))
	defer os.RemoveAll(gen)
	out := filepath.Join(e.dir, "bad-built")
	var jobs []func() error
	for _, p := range ps {
		if p.mangle != "garbage" {
			jobs = append(jobs, func() error { return e.buildOne(gen, out, p) })
		}
	}
	if err := inParallel(2, jobs); err != nil {
		return err
	}
	for _, p := range ps {
		if err := e.mangle(out, p); err != nil {
			return err
		}
	}
	return nil
}

func (e *env) buildOne(gen, out string, p *badPlugin) error {
	src := filepath.Join(gen, strings.ReplaceAll(p.tmpl+"_"+p.version, ".", "_"))
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	if p.tmpl == "coin" || p.tmpl == "coinpanic" {
		b, err := os.ReadFile(filepath.Join(e.bins.Root, "plugins", "coin", "v2", "main.go"))
		if err != nil {
			return err
		}
		s := strings.Replace(string(b), `Version: "2.0.0"`, `Version: "`+p.version+`"`, 1)
		if p.tmpl == "coinpanic" {
			s = strings.Replace(s, "func work(c *abi.Call) error {", "func work(c *abi.Call) error {\n\tif c != nil {\n\t\tpanic(\"chaos: work always panics\")\n\t}", 1)
			s = strings.Replace(s, "SelfTest: selfTest,", "", 1)
			if !strings.Contains(s, "always panics") || strings.Contains(s, "SelfTest: selfTest") {
				return fmt.Errorf("coin v2 source changed: cannot make the panicking version")
			}
		}
		if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(s), 0o644); err != nil {
			return err
		}
	} else {
		b, err := os.ReadFile(filepath.Join(e.bins.Root, "loader", "testdata", "plugins", p.tmpl, "main.go"))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(src, "main.go"), b, 0o644); err != nil {
			return err
		}
		v := fmt.Sprintf("package main\n\nconst version = %q\n", p.version)
		if err := os.WriteFile(filepath.Join(src, "version.go"), []byte(v), 0o644); err != nil {
			return err
		}
	}
	dst := filepath.Join(out, p.version)
	args := []string{"-src", src, "-name", "coin", "-version", p.version, "-out", dst, "-unsafe-skip-vet"}
	cmd := exec.CommandContext(e.ctx, e.bins.Hhbuild, args...)
	cmd.Dir = e.bins.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if p.flipTrim {
		bi, err := buildinfo.ReadFile(e.bins.Hothost)
		if err != nil {
			return err
		}
		flags := "-trimpath"
		for _, s := range bi.Settings {
			if s.Key == "-trimpath" && s.Value == "true" {
				flags = ""
			}
		}
		cmd.Env = append(cmd.Env, "GOFLAGS="+flags)
	} else {
		cmd.Args = append(cmd.Args, "-like", e.bins.Hothost)
	}
	if o, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("hhbuild %s (%s): %v\n%s", p.version, p.what, err, o)
	}
	p.file = filepath.Join(dst, "coin-"+p.version+".so")
	return nil
}

// mangle damages a built file as p says and writes its .sha256 sidecar.
func (e *env) mangle(out string, p *badPlugin) error {
	if p.mangle == "" {
		return nil
	}
	if p.file == "" {
		p.file = filepath.Join(out, p.version, "coin-"+p.version+".so")
		if err := os.MkdirAll(filepath.Dir(p.file), 0o700); err != nil {
			return err
		}
	}
	var data []byte
	switch p.mangle {
	case "garbage":
		data = make([]byte, 2<<20)
		rand.Read(data)
	case "truncate":
		b, err := os.ReadFile(p.file)
		if err != nil {
			return err
		}
		data = b[:len(b)/2]
	case "badsum":
		b, err := os.ReadFile(p.file)
		if err != nil {
			return err
		}
		data = b
	}
	if err := os.WriteFile(p.file, data, 0o600); err != nil {
		return err
	}
	sum, err := sidecar.FileSum(p.file)
	if err != nil {
		return err
	}
	if p.mangle == "badsum" {
		sum[0] ^= 0xff
	}
	return os.WriteFile(p.file+".sha256", sidecar.FormatSum(sum, filepath.Base(p.file)), 0o600)
}

// badStorm drops every bad plugin into a serving host under load, then a
// plugin whose handler always panics.
func (e *env) badStorm() error {
	ps := badCorpus()
	// The game's coin v2 whose work always panics (and no self-test, which
	// would catch it): it keeps every message of coin, so only the panics
	// can fail a request. (The loader corpus's panicky drops `balance`:
	// its requests would fail as unknown, which is not what is tested.)
	panicky := &badPlugin{what: "handler always panics", version: "9.1.0", tmpl: "coinpanic"}
	t0 := time.Now()
	if err := e.buildBad(append(ps, panicky)); err != nil {
		return err
	}
	fmt.Printf("   built %d bad plugins in %v\n", len(ps)+1, time.Since(t0).Round(time.Millisecond))
	cfg, p, a, err := e.serve("bad", true)
	if err != nil {
		return err
	}
	lc := e.loadCfg(p, a)
	lc.AllowCodes = []string{"funds", "internal"} // counted apart below
	l, err := e.warmLoad(lc, 200)
	if err != nil {
		return err
	}
	defer l.Stop()
	pd := filepath.Join(cfg.Dir, "plugins-dir")
	judged := func(want []*badPlugin, done func(state string) bool) (map[string][2]string, error) {
		deadline := time.Now().Add(60 * time.Second)
		for {
			vs, err := versions(e.ctx, p)
			if err != nil {
				return nil, err
			}
			got := map[string][2]string{}
			for _, v := range vs {
				got[filepath.Base(v.File)] = [2]string{v.State, v.Reason}
			}
			all := true
			for _, b := range want {
				if s, ok := got[filepath.Base(b.file)]; !ok || !done(s[0]) {
					all = false
				}
			}
			if all {
				return got, nil
			}
			if time.Now().After(deadline) || e.ctx.Err() != nil {
				return got, errNotDone
			}
			time.Sleep(20 * time.Millisecond) // polling the admin API, bounded by the deadline
		}
	}

	t0 = time.Now()
	for _, b := range ps {
		if err := hostproc.Install(b.file, pd); err != nil {
			return err
		}
	}
	got, err := judged(ps, func(s string) bool { return s == "rejected" })
	took := time.Since(t0)
	for _, b := range ps {
		s := got[filepath.Base(b.file)]
		e.check("bad plugins", b.what, s[0] == "rejected", "%s: %s", orNone(s[0]), clip(s[1], 110))
	}
	if err != nil {
		return fmt.Errorf("%w after %v", err, took.Round(time.Millisecond))
	}
	fmt.Printf("   %d files judged in %v\n", len(ps), took.Round(time.Millisecond))
	mid := l.Hist().Count()

	// The one that passes every check, then panics on every call.
	if err := hostproc.Install(panicky.file, pd); err != nil {
		return err
	}
	got, err = judged([]*badPlugin{panicky}, func(s string) bool { return s == "bad" })
	s := got[filepath.Base(panicky.file)]
	if err != nil {
		e.check("bad plugins", panicky.what, false, "%s: %s", orNone(s[0]), s[1])
		return err
	}
	if err := waitAcks(e.ctx, l, l.Acked()+200, 30*time.Second); err != nil {
		return err
	}
	st, _ := status(e.ctx, p)
	res, _ := e.verify("bad plugins", l, p.Addr)
	internal := res.Codes["internal"]
	// Each connection has at most one request in flight, and probation
	// rolls back on the call that crosses the threshold (3 panics, the
	// host's default): the other connections' requests already running on
	// the panicking version are the only others that can panic.
	bound := int64(3 + e.conns - 1)
	e.check("bad plugins", panicky.what, s[0] == "bad" && internal <= bound,
		"%s: %s; %d 'err internal' replies (bound: 3 panics + %d other connections in flight)", s[0], clip(s[1], 80), internal, e.conns-1)
	e.check("bad plugins", "none stays active", st.Modules["coin"] == "2.0.0", "coin active %s after %d bad files (%d replies after the first batch)",
		st.Modules["coin"], len(ps)+1, res.Hist.N()-mid)
	e.check("bad plugins", "zero failed requests", res.Failed == 0 && res.Transport == 0,
		"%d replies, %d failed, %d lost, apart from the %d panics%s", res.Requests, res.Failed, res.Transport, internal, codes(res))
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(not seen)"
	}
	return s
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
