package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hothost/hothost/host"
	"github.com/hothost/hothost/internal/hostproc"
)

// runtimeCase is one coin version of the host's runtime corpus
// (host/testdata/runtime, whose README says what each does): it passes
// every check before it serves, then misbehaves in `work`.
type runtimeCase struct {
	name string
	// crash: the host dies of it, and the next start must quarantine it.
	// Otherwise the watchdog must fence it without a death.
	crash bool
	// cause: what the version's bad reason must say.
	cause *regexp.Regexp
	file  string // the built .so
}

// badVersion is the version every case is dropped in as, next to coin 1.0.0.
const badVersion = "1.5.0"

func runtimeCorpus() []*runtimeCase {
	cause := func(re string) *regexp.Regexp {
		return regexp.MustCompile(strings.ReplaceAll(re, "VERSION", regexp.QuoteMeta("coin "+badVersion)))
	}
	fenced := `VERSION work ran \S+ for player \d+`
	return []*runtimeCase{
		{name: "exit", crash: true, cause: cause(`^host exited \(status 7\) while VERSION ran work for player \d+`)},
		// Its stack grows to the host's limit (-max-stack-mb, 64) in about
		// the watchdog's 2s on this machine: whichever comes first names
		// it. A fenced call still recurses, and dies: one death either way.
		{name: "overflow", crash: true, cause: cause(`^host died: fatal error: stack overflow in VERSION work|^` + fenced)},
		{name: "gopanic", crash: true, cause: cause(`^host died: panic: runtime error: index out of range .* in VERSION work`)},
		{name: "mapwrites", crash: true, cause: cause(`^host died: fatal error: concurrent map \w+ in VERSION work`)},
		{name: "hang", cause: cause(`^` + fenced)},
		{name: "slow", cause: cause(`^` + fenced)},
	}
}

// buildRuntime builds every case with hhbuild as coin badVersion, the
// statelessness check off (it refuses some of them, and the point here is
// the host's defences at run time). Each case's top-level files are copied
// into a folder of the module (they import coinv1 and gopanic's helper by
// their import paths, which must resolve), removed afterwards.
func (e *env) buildRuntime(cases []*runtimeCase) error {
	corpus := filepath.Join(e.bins.Root, "host", "testdata", "runtime")
	gen := filepath.Join(e.bins.Root, "examples", "chaos", "testdata", fmt.Sprintf("gen-runtime-%d", os.Getpid()))
	defer os.RemoveAll(gen)
	jobs := make([]func() error, len(cases))
	for i, c := range cases {
		jobs[i] = func() error {
			src := filepath.Join(gen, c.name)
			if err := copyGoFiles(filepath.Join(corpus, c.name), src); err != nil {
				return err
			}
			v := fmt.Sprintf("package main\n\nconst version = %q\n", badVersion)
			if err := os.WriteFile(filepath.Join(src, "version.go"), []byte(v), 0o644); err != nil {
				return err
			}
			rel, err := filepath.Rel(e.bins.Root, src)
			if err != nil {
				return err
			}
			c.file, err = e.bins.Plugin(rel, "coin", badVersion, filepath.Join(e.dir, "runtime-built", c.name), "-unsafe-skip-vet")
			return err
		}
	}
	return inParallel(2, jobs)
}

// copyGoFiles copies the .go files of folder from (not its subfolders) into
// a new folder to.
func copyGoFiles(from, to string) error {
	names, err := filepath.Glob(filepath.Join(from, "*.go"))
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return fmt.Errorf("no .go files in %s", from)
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, filepath.Base(n)), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// inParallel runs jobs, width at a time, and returns the first error.
func inParallel(width int, jobs []func() error) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(jobs))
	sem := make(chan struct{}, width)
	for _, job := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := job(); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs // nil once closed and empty
}

// supervisor restarts the host whenever it dies, as a process supervisor
// would: it tells the new host how the previous one ended
// (host.PrevExitEnv, exec's ProcessState.String()) and points the load at
// the new address.
type supervisor struct {
	e    *env
	cfg  hostproc.Config
	a    *addr
	stop chan struct{}
	once sync.Once
	done chan struct{}

	mu     sync.Mutex
	procs  []*hostproc.Proc // every host it ran, the current one last
	deaths []death
	err    error // a restart that failed: supervision ended
}

type death struct {
	exit string        // how the host ended
	down time.Duration // death -> the next host serving
	// crash is what the next host made of it (status last_crash), nil if
	// it could not be read.
	crash *host.CrashReport
}

func (e *env) supervise(cfg hostproc.Config, p *hostproc.Proc, a *addr) *supervisor {
	s := &supervisor{e: e, cfg: cfg, a: a, stop: make(chan struct{}), done: make(chan struct{}), procs: []*hostproc.Proc{p}}
	go s.run()
	return s
}

func (s *supervisor) run() {
	defer close(s.done)
	for {
		p := s.proc()
		select {
		case <-s.stop:
			return
		case <-p.Done():
		}
		died := time.Now()
		exit := p.Cmd.ProcessState.String()
		np, err := s.e.restart(s.cfg, p)
		d := death{exit: exit, down: time.Since(died)}
		if err == nil {
			if st, err := status(s.e.ctx, np); err == nil {
				d.crash = st.LastCrash
			}
		}
		s.mu.Lock()
		s.deaths = append(s.deaths, d)
		if err != nil {
			s.err = fmt.Errorf("restart after %s: %w", exit, err)
			s.mu.Unlock()
			return
		}
		s.procs = append(s.procs, np)
		s.mu.Unlock()
		s.a.set(np.Addr)
	}
}

// deathsSoFar are the deaths seen so far.
func (s *supervisor) deathsSoFar() []death {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deaths)
}

// proc is the host serving now (or the one that just died).
func (s *supervisor) proc() *hostproc.Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.procs[len(s.procs)-1]
}

// end stops supervising (once; later calls only report) and returns the
// current host, the deaths seen and a restart's failure.
func (s *supervisor) end() (*hostproc.Proc, []death, error) {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.procs[len(s.procs)-1], s.deaths, s.err
}

// fenced counts the requests the watchdog fenced in every host the
// supervisor ran, by the version they ran on (from the hosts' logs: the
// host logs each one once).
func (s *supervisor) fenced() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := map[string]int{}
	for _, p := range s.procs {
		for line := range strings.Lines(p.Log()) {
			if strings.Contains(line, `msg="handler past its deadline`) {
				if m := versionRE.FindStringSubmatch(line); m != nil {
					n[m[1]]++
				}
			}
		}
	}
	return n
}

// runtimeFaults drops each case of the runtime corpus into a host under
// load and checks the host's defences: one death at most per bad version
// (a supervisor restarts the host), the version bad with its cause, the
// previous version serving, no failed request of another player, and the
// ledger exact. only, if not empty, names the cases to run
// (comma-separated).
func (e *env) runtimeFaults(only string) error {
	var cases []*runtimeCase
	for _, c := range runtimeCorpus() {
		if only == "" || slices.Contains(strings.Split(only, ","), c.name) {
			cases = append(cases, c)
		}
	}
	if len(cases) == 0 {
		return fmt.Errorf("no runtime case named in %q", only)
	}
	t0 := time.Now()
	if err := e.buildRuntime(cases); err != nil {
		return err
	}
	fmt.Printf("   built %d runtime cases in %v\n", len(cases), time.Since(t0).Round(time.Millisecond))
	for _, c := range cases {
		if err := e.runtimeCase(c); err != nil {
			e.check("runtime "+c.name, "case ran to its end", false, "%v", err)
		}
		e.stopAll()
	}
	return nil
}

func (e *env) runtimeCase(c *runtimeCase) error {
	sc := "runtime " + c.name
	cfg, p, a, err := e.serve("rt-"+c.name, false)
	if err != nil {
		return err
	}
	lc := e.loadCfg(p, a)
	lc.Reconnect = time.Minute
	// The host decides when a call has run too long; a request that the
	// client gave up on first would be a transport error the host did not
	// cause (overflow's recursing calls can slow a 2-core host for seconds).
	lc.Timeout = time.Minute
	// The bad version's own victims: the request that ran past the
	// deadline, and its player's later requests until the call ends.
	// Counted apart, and checked against the host's own count below.
	lc.AllowCodes = []string{"funds", "timeout", "stuck"}
	l, err := e.warmLoad(lc, 300)
	if err != nil {
		return err
	}
	defer l.Stop()
	sup := e.supervise(cfg, p, a)
	defer sup.end()

	landed := time.Now()
	if err := hostproc.Install(c.file, filepath.Join(cfg.Dir, "plugins-dir")); err != nil {
		return err
	}
	var bad host.VersionStatus
	err = e.poll(2*time.Minute, func() bool {
		vs, err := versions(e.ctx, sup.proc())
		if err != nil {
			return false // the host is down: the supervisor restarts it
		}
		i := slices.IndexFunc(vs, func(v host.VersionStatus) bool {
			return v.Module == "coin" && v.Version == badVersion && v.State != "rejected"
		})
		if i >= 0 {
			bad = vs[i]
		}
		return bad.State == "bad"
	})
	toBad := time.Since(landed)
	if err != nil {
		return fmt.Errorf("coin %s not bad after %v (state %q %q): %w", badVersion, toBad.Round(time.Millisecond), bad.State, bad.Reason, err)
	}
	if c.crash {
		// The watchdog may mark a crashing version bad before it kills
		// the host (overflow's fenced calls recurse on): the death, once
		// it came, is part of what is checked below.
		e.poll(2*time.Minute, func() bool { return len(sup.deathsSoFar()) > 0 })
	}
	// The previous version serves: the load goes on, work and all, and a
	// bad version still active would kill or hang it again.
	after := l.Acked()
	if err := waitAcks(e.ctx, l, after+1500, time.Minute); err != nil {
		p, deaths, supErr := sup.end()
		st, _ := status(e.ctx, p)
		return fmt.Errorf("%w; %d deaths%s%s; coin %s active, %d stuck (%s)", stalled(l, err), len(deaths), deathFigures(deaths),
			errText(supErr), st.Modules["coin"], len(st.Stuck), e.keepLog("runtime-"+c.name, p))
	}
	p, deaths, supErr := sup.end()
	if supErr != nil {
		return supErr
	}
	st, err := status(e.ctx, p)
	if err != nil {
		return err
	}
	if c.name == "slow" {
		// slow's fenced calls end by themselves, and their players are
		// served again; hang's run until the restart below.
		if err := e.poll(30*time.Second, func() bool { st, err = status(e.ctx, p); return err == nil && len(st.Stuck) == 0 }); err != nil {
			return fmt.Errorf("slow's fenced calls never ended: %+v", st.Stuck)
		}
	}
	res := l.Stop()
	fenced, fencedAll := sup.fenced(), 0
	for _, n := range fenced {
		fencedAll += n
	}

	wantDeaths := map[bool]int{true: 1, false: 0}[c.crash]
	e.check(sc, "host dies at most once", len(deaths) == wantDeaths,
		"%d deaths (want %d)%s; then %d replies, work in the mix, no other death", len(deaths), wantDeaths, deathFigures(deaths), l.Acked()-after)
	// A crash is attributed to the version at the next start (status
	// last_crash), whether that quarantined it or the watchdog had.
	attributed := !c.crash || st.LastCrash != nil && st.LastCrash.Module == "coin" && st.LastCrash.Version == badVersion
	e.check(sc, "version bad, its cause named", bad.State == "bad" && c.cause.MatchString(bad.Reason) && attributed,
		"bad %v after the drop-in: %q%s", toBad.Round(time.Millisecond), clip(bad.Reason, 120), lastCrash(st.LastCrash))
	e.check(sc, "the previous version serves", st.Modules["coin"] == "1.0.0", "coin %s active", st.Modules["coin"])
	// Every err timeout is a call of the bad version that the watchdog
	// fenced (a fence of a good version's call would be another player's
	// failure), and err stuck goes only to the players of such calls.
	e.check(sc, "other players never fail", res.Failed == 0 && res.Codes["timeout"] == int64(fencedAll) && fencedAll == fenced[badVersion],
		"%d replies, %d failed; err timeout %d (= %d calls fenced), err stuck %d (their players' next requests); %d cut by the death, %d reconnects; max %v%s",
		res.Requests, res.Failed, res.Codes["timeout"], fenced[badVersion], res.Codes["stuck"], res.Transport, res.Reconnects,
		res.Max.Round(time.Millisecond), codes(res))

	// A clean restart: SIGTERM drains (stuck goroutines or not), and the
	// bad mark is still there after it. The ledger is then read from the
	// restarted host, where no call is stuck.
	stuck := len(st.Stuck)
	t1 := time.Now()
	stopErr := p.Stop()
	stopped := time.Since(t1)
	if p, err = e.restart(cfg, p); err != nil {
		return err
	}
	again, _ := versions(e.ctx, p)
	stillBad := slices.ContainsFunc(again, func(v host.VersionStatus) bool {
		return v.Module == "coin" && v.Version == badVersion && v.State == "bad"
	})
	st, _ = status(e.ctx, p)
	e.check(sc, "SIGTERM restart: still bad", stopErr == nil && stillBad && st.Modules["coin"] == "1.0.0",
		"exit %s after %v with %d stuck; coin %s bad: %t, coin %s active", errOr(stopErr), stopped.Round(time.Millisecond),
		stuck, badVersion, stillBad, st.Modules["coin"])
	e.verifyResult(sc, res, p.Addr)
	return nil
}

var versionRE = regexp.MustCompile(`\bversion=(\S+)`)

// deathFigures says how each death ended, how long the host was down
// (restarted with host.PrevExitEnv set) and what the next start made of it.
func deathFigures(deaths []death) string {
	var b strings.Builder
	for i, d := range deaths {
		sep := "; "
		if i == 0 {
			sep = ": "
		}
		fmt.Fprintf(&b, "%s%s, serving again after %v", sep, d.exit, d.down.Round(time.Millisecond))
		if d.crash != nil {
			fmt.Fprintf(&b, ", then %q (quarantined %t)", clip(d.crash.Reason, 110), d.crash.Quarantined)
		}
	}
	return b.String()
}

func lastCrash(cr *host.CrashReport) string {
	if cr == nil {
		return ""
	}
	return fmt.Sprintf("; status last_crash: %q (exit %q, quarantined %t)", clip(cr.Reason, 100), cr.Exit, cr.Quarantined)
}
