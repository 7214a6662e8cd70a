package main

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hothost/hothost/host"
	"github.com/hothost/hothost/internal/hostproc"
	"github.com/hothost/hothost/internal/loadgen"
)

// txKills is how many kills the trade storm lands inside cross-player
// commits (host.TxKillEnv), after its kills at random instants.
const txKills = 20

// tradeStorm runs the trade mix (gives and trades between the load's own
// players, with work and buys) through coin v1/v2 swaps and kills kill -9
// of the host at random instants, then txKills kills inside the commit of
// a give or trade (the host's own test seam, at each point of the commit).
// After each restart the load is paused and audited: every player read,
// the coins of all of them exactly what they had plus what works earned
// minus what buys spent, every reply a kill cut placed.
func (e *env) tradeStorm(kills int) error {
	const sc = "trade storm"
	cfg, err := e.fresh("trades", true)
	if err != nil {
		return err
	}
	market, err := e.bins.Plugin("plugins/market", "market", "1.0.0", filepath.Join(e.dir, "built"))
	if err != nil {
		return err
	}
	if err := hostproc.Install(market, filepath.Join(cfg.Dir, "plugins-dir")); err != nil {
		return err
	}
	p, err := e.start(cfg)
	if err != nil {
		return err
	}
	a := newAddr(p.Addr)
	lc := e.loadCfg(p, a)
	lc.Mix, lc.Players, lc.Reconnect = loadgen.TradeMix, 3*e.conns, 30*time.Second
	// Between two armed hosts the host stops cleanly: a request that
	// arrives while it drains is refused with "draining", which is no
	// failure.
	lc.AllowCodes = []string{"funds", "draining"}
	l, err := e.warmLoad(lc, 300)
	if err != nil {
		return err
	}
	defer l.Stop()
	before, err := status(e.ctx, p)
	if err != nil {
		return err
	}
	t := &tradeAudits{e: e, l: l}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))

	// Kills at random instants, a swap of coin before each.
	swaps, notRecovered := 0, 0
	var resume []time.Duration
	for i := range kills {
		if err := waitAcks(e.ctx, l, l.Acked()+1+rng.Int64N(800), 30*time.Second); err != nil {
			return fmt.Errorf("kill %d: %w", i+1, stalled(l, err))
		}
		if err := p.Admin(e.ctx, "POST", "/v1/activate?module=coin&version="+[]string{"2.0.0", "1.0.0"}[i%2], nil); err != nil {
			return fmt.Errorf("swap %d: %w", i+1, err)
		}
		swaps++
		if err := waitAcks(e.ctx, l, l.Acked()+1+rng.Int64N(800), 30*time.Second); err != nil {
			return fmt.Errorf("kill %d: %w", i+1, stalled(l, err))
		}
		p.Kill()
		t0 := time.Now()
		if p, err = e.restart(cfg, p); err != nil {
			return fmt.Errorf("restart %d: %w", i+1, err)
		}
		a.set(p.Addr)
		if err := t.after(p, fmt.Sprintf("kill %d", i+1)); err != nil {
			return err
		}
		resume = append(resume, time.Since(t0))
		if st, err := status(e.ctx, p); err != nil || st.State.Opened != "recovered" || !sameModules(st.Modules, before.Modules) {
			notRecovered++
		}
	}
	e.check(sc, fmt.Sprintf("%d kill -9 under gives and trades", kills), notRecovered == 0,
		"%d restarts recovered the segment and serve every module; %d coin swaps; kill -> audited %s", kills-notRecovered, swaps,
		quantiles(resume))
	t.report(sc, "total coins exact after each kill")

	// Kills inside the commit of a give or trade.
	rolledBack, points := 0, [3]int{}
	var notes []string
	t.audits, t.totalOK, t.exact, t.players, t.first = 0, 0, 0, 0, ""
	for i := range txKills {
		point := rng.IntN(3)
		armed := cfg
		armed.Env = []string{fmt.Sprintf("%s=%d:%d", host.TxKillEnv, 1+rng.IntN(200), point)}
		if err := p.Stop(); err != nil { // a clean stop: every kill of this phase is the seam's
			return fmt.Errorf("stop before commit kill %d: %w", i+1, err)
		}
		if p, err = e.restart(armed, p); err != nil {
			return fmt.Errorf("armed restart %d: %w", i+1, err)
		}
		a.set(p.Addr)
		select {
		case <-p.Done():
		case <-time.After(2 * time.Minute): // the load's gives and trades reach the Nth commit long before
			return fmt.Errorf("commit kill %d: the armed host (%s) is still alive after 2 minutes", i+1, armed.Env[0])
		case <-e.ctx.Done():
			return e.ctx.Err()
		}
		if got := p.Cmd.ProcessState.String(); got != "signal: killed" {
			return fmt.Errorf("commit kill %d: the armed host ended with %q: %s", i+1, got, e.keepLog(fmt.Sprintf("trades-armed-%d", i+1), p))
		}
		if p, err = e.restart(cfg, p); err != nil {
			return fmt.Errorf("restart after commit kill %d: %w", i+1, err)
		}
		a.set(p.Addr)
		st, err := status(e.ctx, p)
		if err != nil {
			return err
		}
		m := lostRE.FindStringSubmatch(st.State.Report)
		if repaired, _ := strconv.Atoi(mget(m, 2)); repaired >= 1 && hasRollback(p) {
			rolledBack++
			points[point]++
		} else {
			notes = append(notes, fmt.Sprintf("commit kill %d (%s): %s", i+1, armed.Env[0], st.State.Report))
		}
		if err := t.after(p, fmt.Sprintf("commit kill %d", i+1)); err != nil {
			return err
		}
	}
	e.check(sc, fmt.Sprintf("%d kills inside cross-player commits", txKills), rolledBack == txKills,
		"%d restarts rolled back the unfinished give or trade (killed with the journal prepared %d, one player written %d, both written %d)%s",
		rolledBack, points[0], points[1], points[2], first(notes))
	t.report(sc, "total coins exact after each commit kill")

	if err := waitAcks(e.ctx, l, l.Acked()+500, 30*time.Second); err != nil {
		return stalled(l, err)
	}
	res, ck := e.verify(sc, l, p.Addr)
	e.check(sc, "no coin created or destroyed", ck.TotalOK && ck.OK(),
		"%d coins on the server = %d at start + %d earned - %d spent; %d coins moved in %d gives and trades through %d kills and %d commit kills",
		ck.Coins, ck.Total-ck.Earned+ck.Spent, ck.Earned, ck.Spent, ck.Moved, ck.Moves, kills, txKills)
	e.check(sc, "no failed reply", res.Failed == 0, "%d replies (%.0f/s), %d failed, %d cut by kills, %d pushes%s",
		res.Requests, res.Throughput, res.Failed, res.Transport, res.Pushes, codes(res))
	return nil
}

// sameModules reports whether a and b serve the same modules, coin at
// any version (the storm swaps it).
func sameModules(a, b map[string]string) bool {
	a, b = maps.Clone(a), maps.Clone(b)
	delete(a, "coin")
	delete(b, "coin")
	return maps.Equal(a, b) && len(a) > 0
}

func mget(m []string, i int) string {
	if i < len(m) {
		return m[i]
	}
	return ""
}

// hasRollback reports whether host p's recovery rolled a transaction back.
func hasRollback(p *hostproc.Proc) bool {
	return strings.Contains(p.Log(), "rolled back an unfinished transaction")
}

// tradeAudits audits the trade load after each restart and keeps the
// figures.
type tradeAudits struct {
	e                               *env
	l                               *loadgen.Load
	audits, totalOK, exact, players int
	took                            []time.Duration
	first                           string
	last                            *loadgen.Check
}

// after waits for the load to run on restarted host p, then audits it.
func (t *tradeAudits) after(p *hostproc.Proc, what string) error {
	if err := waitAcks(t.e.ctx, t.l, t.l.Acked()+1, 30*time.Second); err != nil {
		return fmt.Errorf("after %s: %w", what, stalled(t.l, err))
	}
	t0 := time.Now()
	ck := t.l.Audit(t.e.ctx, p.Addr)
	t.took = append(t.took, time.Since(t0))
	t.audits++
	t.players += ck.Players
	t.exact += ck.Exact
	if ck.TotalOK && ck.OK() {
		t.totalOK++
	} else if t.first == "" {
		t.first = fmt.Sprintf("; after %s: %s%s", what, ck, first(ck.Violations))
	}
	t.last = ck
	return nil
}

func (t *tradeAudits) report(sc, check string) {
	ck := t.last
	t.e.check(sc, check, t.totalOK == t.audits && t.audits > 0,
		"%d of %d audits exact in total; players exact %d of %d reads; so far %d coins = %d earned - %d spent + start, %d moved in %d gives and trades, %d cut replies placed by reads (%d ambiguous); audit %s%s",
		t.totalOK, t.audits, t.exact, t.players, ck.Total, ck.Earned, ck.Spent, ck.Moved, ck.Moves, ck.Placed, ck.Ambiguous, quantiles(t.took), t.first)
}
