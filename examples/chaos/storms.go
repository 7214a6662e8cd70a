package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hothost/hothost/host"
	"github.com/hothost/hothost/internal/hostproc"
	"github.com/hothost/hothost/internal/loadgen"
)

// addr is the host's current client address: a restarted host listens on
// a new port, and the load's workers read it at each reconnect.
type addr struct{ p atomic.Pointer[string] }

func (a *addr) set(s string) { a.p.Store(&s) }
func (a *addr) get() string  { return *a.p.Load() }
func newAddr(s string) *addr { a := &addr{}; a.set(s); return a }

// loadCfg is the chaos load against host p (and its restarts, which keep
// its data directory and so its ticket key) at a.
func (e *env) loadCfg(p *hostproc.Proc, a *addr) loadgen.Config {
	return loadgen.Config{Addr: a.get, Conns: e.conns, Players: 8 * e.conns, Session: 50, Duration: 10 * time.Minute,
		Tickets: p.Tickets()}
}

// warmLoad starts a load with lc and waits until it has warm replies: the
// scenario's fault lands on a host already serving. On failure the load
// is stopped.
func (e *env) warmLoad(lc loadgen.Config, warm int64) (*loadgen.Load, error) {
	l, err := loadgen.Start(e.ctx, lc)
	if err != nil {
		return nil, err
	}
	if err := waitAcks(e.ctx, l, warm, 30*time.Second); err != nil {
		l.Stop()
		return nil, err
	}
	return l, nil
}

// waitAcks polls until the load has n replies, for at most d.
func waitAcks(ctx context.Context, l *loadgen.Load, n int64, d time.Duration) error {
	deadline := time.Now().Add(d)
	for l.Acked() < n {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("load stalled at %d replies, waited for %d", l.Acked(), n)
		}
		time.Sleep(time.Millisecond) // polling a counter, bounded by the deadline
	}
	return nil
}

// poll calls cond until it holds, for at most d.
func (e *env) poll(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) || e.ctx.Err() != nil {
			return errTimedOut
		}
		time.Sleep(20 * time.Millisecond) // polling the admin API, bounded by the deadline
	}
	return nil
}

var errTimedOut = errors.New("timed out")

// keepLog writes what host p printed to a file of the work directory, for
// whoever investigates a failed check, and says where.
func (e *env) keepLog(name string, p *hostproc.Proc) string {
	path := filepath.Join(e.dir, name+".log")
	if err := os.WriteFile(path, []byte(p.Log()), 0o600); err != nil {
		return "its log is lost: " + err.Error()
	}
	return "its log: " + path + ", -keep keeps it"
}

// stalled ends a load that stopped making progress and adds why to err:
// its failures by code.
func stalled(l *loadgen.Load, err error) error {
	res := l.Stop()
	return fmt.Errorf("%w (%d failed, %d cut, %d reconnects%s)", err, res.Failed, res.Transport, res.Reconnects, codes(res))
}

func status(ctx context.Context, p *hostproc.Proc) (host.Status, error) {
	var st host.Status
	err := p.Admin(ctx, "GET", "/v1/status", &st)
	return st, err
}

func versions(ctx context.Context, p *hostproc.Proc) ([]host.VersionStatus, error) {
	var vs []host.VersionStatus
	err := p.Admin(ctx, "GET", "/v1/versions", &vs)
	return vs, err
}

func quantiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(f float64) time.Duration { return s[min(len(s)-1, int(f*float64(len(s))))].Round(time.Microsecond) }
	return fmt.Sprintf("p50 %v p99 %v max %v", q(0.5), q(0.99), s[len(s)-1].Round(time.Microsecond))
}

// verify ends a load and compares the server with its ledger.
func (e *env) verify(scenario string, l *loadgen.Load, a string) (*loadgen.Result, *loadgen.Check) {
	return e.verifyResult(scenario, l.Stop(), a)
}

// verifyResult compares the server at a with the ledger of an ended load.
func (e *env) verifyResult(scenario string, res *loadgen.Result, a string) (*loadgen.Result, *loadgen.Check) {
	ck := loadgen.Verify(e.ctx, a, res, 10*time.Second)
	viol := append(res.Violations, ck.Violations...)
	e.check(scenario, "ledger exact", len(viol) == 0 && ck.Players > 0, "%s%s", ck, first(viol))
	return res, ck
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return "; first: " + v[0]
}

// swapStorm alternates coin v1 and v2 n times through the admin API while
// the load runs.
func (e *env) swapStorm(n int) error {
	_, p, a, err := e.serve("swap", true)
	if err != nil {
		return err
	}
	l, err := e.warmLoad(e.loadCfg(p, a), 200)
	if err != nil {
		return err
	}
	var lat []time.Duration
	swapErrs := 0
	var firstErr error
	for i := range n {
		ver := []string{"1.0.0", "2.0.0"}[i%2]
		next := l.Acked() + 20 // let requests run on each version
		t0 := time.Now()
		if err := p.Admin(e.ctx, "POST", "/v1/activate?module=coin&version="+ver, nil); err != nil {
			swapErrs++
			firstErr = cmp(firstErr, err)
		}
		lat = append(lat, time.Since(t0))
		if err := waitAcks(e.ctx, l, next, 30*time.Second); err != nil {
			l.Stop()
			return err
		}
	}
	st, _ := status(e.ctx, p)
	res, _ := e.verify("swap storm", l, p.Addr)
	e.check("swap storm", fmt.Sprintf("%d swaps through the admin API", n), swapErrs == 0 && st.TableGen >= uint64(n),
		"%d refused%s; table generation %d; activate call %s", swapErrs, errText(firstErr), st.TableGen, quantiles(lat))
	e.check("swap storm", "zero failed requests", res.Failed == 0 && res.Transport == 0,
		"%d replies, %d failed, %d lost; %.0f/s, p99 %v%s", res.Requests, res.Failed, res.Transport, res.Throughput,
		res.P99, codes(res))
	return nil
}

func cmp(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return " (" + err.Error() + ")"
}

func codes(r *loadgen.Result) string {
	s := ""
	for c, n := range r.Codes {
		if c == "funds" { // a refusal the game makes, not a failure
			continue
		}
		s += fmt.Sprintf("; err %s x%d (%s)", c, n, r.Examples[c])
	}
	return s
}

var lostRE = regexp.MustCompile(`recovery checked (\d+), repaired (\d+), lost (\d+)`)

// killStorm kills the host with SIGKILL n times at random points of the
// load and restarts it each time.
func (e *env) killStorm(n int) error {
	cfg, p, a, err := e.serve("kill", false)
	if err != nil {
		return err
	}
	lc := e.loadCfg(p, a)
	lc.Reconnect = 30 * time.Second
	l, err := loadgen.Start(e.ctx, lc)
	if err != nil {
		return err
	}
	defer l.Stop()
	before, err := status(e.ctx, p)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var serving, firstReply []time.Duration
	torn, repaired, checked, notRecovered, fewer := 0, 0, 0, 0, 0
	var notes, fewerNotes []string
	for i := range n {
		// A random instant: after a random number of further replies.
		if err := waitAcks(e.ctx, l, l.Acked()+1+rng.Int64N(1500), 30*time.Second); err != nil {
			return fmt.Errorf("kill %d: %w", i+1, stalled(l, err))
		}
		p.Kill()
		t0 := time.Now()
		acked := l.Acked()
		if p, err = e.restart(cfg, p); err != nil {
			return fmt.Errorf("restart %d: %w", i+1, err)
		}
		serving = append(serving, time.Since(t0))
		a.set(p.Addr)
		if err := waitAcks(e.ctx, l, acked+1, 30*time.Second); err != nil {
			return fmt.Errorf("after restart %d: %w", i+1, stalled(l, err))
		}
		firstReply = append(firstReply, time.Since(t0))
		st, err := status(e.ctx, p)
		if err != nil {
			return err
		}
		if st.State.Opened != "recovered" {
			notRecovered++
			notes = append(notes, st.State.Report)
		}
		if !maps.Equal(st.Modules, before.Modules) {
			fewer++
			note := fmt.Sprintf("restart %d serves %v, before %v (%s)", i+1, st.Modules, before.Modules,
				e.keepLog(fmt.Sprintf("kill-restart-%d", i+1), p))
			fmt.Println("   " + note)
			fewerNotes = append(fewerNotes, note)
		}
		if m := lostRE.FindStringSubmatch(st.State.Report); m != nil {
			c, _ := strconv.Atoi(m[1])
			r, _ := strconv.Atoi(m[2])
			t, _ := strconv.Atoi(m[3])
			checked, repaired, torn = checked+c, repaired+r, torn+t
		} else {
			notes = append(notes, "no recovery figures in: "+st.State.Report)
		}
	}
	if err := waitAcks(e.ctx, l, l.Acked()+500, 30*time.Second); err != nil {
		return stalled(l, err)
	}
	res, ck := e.verify("kill storm", l, p.Addr)
	e.check("kill storm", fmt.Sprintf("%d kill -9, each restarted", n), notRecovered == 0,
		"%d restarts recovered the segment%s", n-notRecovered, first(notes))
	e.check("kill storm", "every restart serves every module", fewer == 0, "%d of %d restarts served %v%s",
		n-fewer, n, before.Modules, first(fewerNotes))
	e.check("kill storm", "zero torn slots", torn == 0,
		"recovery checked %d records, repaired %d from undo, lost %d", checked, repaired, torn)
	e.check("kill storm", "every acknowledged update present", len(res.Violations) == 0 && ck.OK(),
		"%d acknowledged updates; %d requests cut by kills and retried by tag; %d cut and left to the ledger, %d of them committed",
		ck.Updates, res.Retried, res.Transport, ck.LostReplies)
	e.check("kill storm", "resume time per restart", len(serving) == n,
		"kill -> serving %s; kill -> first reply %s", quantiles(serving), quantiles(firstReply))
	e.check("kill storm", "no failed reply", res.Failed == 0, "%d replies, %d failed%s", res.Requests, res.Failed, codes(res))
	return nil
}

var errNotDone = errors.New("not every dropped file was judged")
