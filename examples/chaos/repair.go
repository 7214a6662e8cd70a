package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hothost/hothost/host"
	"github.com/hothost/hothost/internal/hostproc"
	"github.com/hothost/hothost/internal/loadgen"
)

// The repair run: the example repair plugins/fixes/coinfix (coins above
// 10,000 divided by 10), built by hhbuild, run through the admin API on
// players that a 1,000,000-coin work reward made rich, while the ledger-
// checked load plays on, some of its players among the fixed ones:
//
//	quiet      rich, untouched by the load: their coins must end exactly as
//	           the dry run predicted (a second fix would leave a tenth of it)
//	loaded     the load's players; the first half rich and selected, the
//	           second half poor and outside the ids: the control group
//	poor       in the ids but under the threshold: the fix's Select skips them
//
// The ledger sees each fixed loaded player's coins jump once, from the
// value the run recorded before the fix to the one it wrote; every such jump
// is matched to the run's record, and any other difference is a violation.

// span is a range of player ids.
type span struct {
	first uint64
	n     int
}

func (s span) end() uint64        { return s.first + uint64(s.n) }
func (s span) has(id uint64) bool { return id >= s.first && id < s.end() }
func (s span) ids(yield func(uint64) bool) {
	for id := s.first; id < s.end(); id++ {
		if !yield(id) {
			return
		}
	}
}

// repairPlayers are the groups of the repair run, in id order.
type repairPlayers struct {
	quietA, loaded, quietB, poor span
}

func newRepairPlayers(loaded int) repairPlayers {
	var g repairPlayers
	g.quietA = span{1001, 100}
	g.loaded = span{g.quietA.end(), loaded}
	g.quietB = span{g.loaded.end(), 100}
	g.poor = span{g.quietB.end(), 20}
	return g
}

// selected are the loaded players in the fix's ids (all rich).
func (g repairPlayers) selected() span { return span{g.loaded.first, g.loaded.n / 2} }

func (g repairPlayers) quiet(id uint64) bool { return g.quietA.has(id) || g.quietB.has(id) }

// changing is how many players the fix changes.
func (g repairPlayers) changing() int { return g.quietA.n + g.selected().n + g.quietB.n }

// ids is the fix's selection: everything but the unselected loaded players.
func (g repairPlayers) ids() string {
	return fmt.Sprintf("%d-%d,%d-%d", g.quietA.first, g.selected().end()-1, g.quietB.first, g.poor.end()-1)
}

const (
	richCoins = 1_000_000 // one work under the bug's reward
	fixFile   = "coinfix-1.0.0.so"
)

// The repair API's answers, as far as the run reads them (host/fix.go).
type (
	fixChange struct {
		Field         string
		Before, After int64
	}
	fixPlayer struct {
		ID      uint64
		Changes []fixChange
	}
	fixTotal struct {
		Field     string
		Players   int
		BeforeSum int64 `json:"before_sum"`
		AfterSum  int64 `json:"after_sum"`
	}
	fixDryRun struct {
		Looked                              int `json:"looked_at"`
		Changed, Unchanged, Skipped, Failed int
		Totals                              []fixTotal
		Players                             []fixPlayer
		Complete, Committed                 bool
		Took                                string
	}
	fixRunDoc struct {
		ID, Status, Error, Snapshot                                    string
		Resumes, Players, Applied, Unchanged, Skipped, Failed, Pending int
		Totals                                                         []fixTotal
		Diffs                                                          []fixPlayer
		Undo                                                           *struct {
			Restored, Already, Forced, Missing int
			Conflicts                          []struct {
				ID      uint64
				Changes []fixChange `json:"changed_since"`
			}
		}
	}
)

// coinsChange is a player's one change, which must be its Coins.
func (p fixPlayer) coinsChange() (fixChange, bool) {
	if len(p.Changes) != 1 || p.Changes[0].Field != "Coins" {
		return fixChange{}, false
	}
	return p.Changes[0], true
}

// repair is the chaos run of `hotctl fix`: a dry run, an apply killed by
// kill -9 halfway (host.FixKillEnv) and resumed after a restart, and an
// undo, all under load.
func (e *env) repair() error {
	const sc = "repair"
	g := newRepairPlayers(8 * e.conns)
	cfg, err := e.fresh("repair", false)
	if err != nil {
		return err
	}
	// The host kills itself right after the intent of the middle player
	// is durable, before its commit: the worst instant for a run.
	killAt := g.changing() / 2
	cfg.Env = []string{host.FixKillEnv + "=intent:" + strconv.Itoa(killAt)}
	fixes := filepath.Join(cfg.Dir, "data", "fixes")
	if err := os.MkdirAll(fixes, 0o700); err != nil {
		return err
	}
	t0 := time.Now()
	if _, err := e.bins.Plugin("plugins/fixes/coinfix", "coinfix", "1.0.0", fixes); err != nil {
		return err
	}
	built := time.Since(t0)
	p, err := e.start(cfg)
	if err != nil {
		return err
	}
	a := newAddr(p.Addr)
	if err := e.makeRich(p, cfg, g); err != nil {
		return err
	}
	fmt.Printf("   coinfix built by hhbuild in %v; %d rich players, %d poor; fix ids %s; load on %d players from %d\n",
		built.Round(time.Millisecond), g.changing(), g.poor.n, g.ids(), g.loaded.n, g.loaded.first)

	lc := e.loadCfg(p, a)
	lc.FirstPlayer, lc.Players = g.loaded.first, g.loaded.n
	lc.Reconnect = 30 * time.Second
	// No purchases: a reply lost to the kill with a `buy` pending lets the
	// ledger take any drop in coins as that purchase, the fix's included,
	// and the fix's jump would go unseen.
	lc.Mix = []loadgen.Weighted{{Cmd: "work", Weight: 6}, {Cmd: "balance", Weight: 2}, {Cmd: "whoami", Weight: 1}}
	l, err := e.warmLoad(lc, 500)
	if err != nil {
		return err
	}
	defer l.Stop()

	var dry fixDryRun
	if err := p.Admin(e.ctx, "POST", "/v1/fix/dry-run?limit=100000&file="+fixFile+"&ids="+g.ids(), &dry); err != nil {
		return err
	}
	predicted, why := e.checkDryRun(p, g, &dry)
	e.check(sc, "dry run predicts, commits nothing", why == "" && len(l.Violations()) == 0,
		"%d looked at: %d would change, %d not selected, %d failed, took %s; %s; under load, %d ledger differences%s",
		dry.Looked, dry.Changed, dry.Skipped, dry.Failed, dry.Took, totals(dry.Totals), len(l.Violations()), because(why))

	// The apply: its answer may be lost to the kill, the run is found after the restart.
	var started fixRunDoc
	applyErr := p.Admin(e.ctx, "POST", "/v1/fix/apply?file="+fixFile+"&ids="+g.ids(), &started)
	select {
	case <-p.Done():
	case <-time.After(2 * time.Minute): // a bound on a run of a few hundred players
		return fmt.Errorf("the host did not kill itself at intent %d (%s)", killAt, e.keepLog("repair-apply", p))
	}
	killed := time.Now()
	acked := l.Acked()
	exit := p.Cmd.ProcessState.String()
	e.check(sc, "apply killed by kill -9 halfway", exit == "signal: killed",
		"%s at the durable intent of player %d of %d to change (run %s, snapshot %s)%s", exit, killAt, g.changing(),
		orNone(started.ID), orNone(filepath.Base(started.Snapshot)), errText(applyErr))

	cfg.Env = nil
	if p, err = e.restart(cfg, p); err != nil {
		return err
	}
	serving := time.Since(killed)
	a.set(p.Addr)
	if err := waitAcks(e.ctx, l, acked+1, 30*time.Second); err != nil {
		return fmt.Errorf("after the restart: %w", stalled(l, err))
	}
	firstReply := time.Since(killed)
	var runs []fixRunDoc
	if err := p.Admin(e.ctx, "GET", "/v1/fix/runs", &runs); err != nil {
		return err
	}
	if len(runs) != 1 || started.ID != "" && runs[0].ID != started.ID {
		return fmt.Errorf("after the restart: %d runs listed, want the one started (%q): %+v", len(runs), started.ID, runs)
	}
	run := runs[0]
	e.check(sc, "restart lists the run interrupted",
		run.Status == "interrupted" && run.Applied < killAt && run.Pending > 0 && run.Applied+run.Skipped+run.Pending == run.Players &&
			strings.Contains(p.Log(), "FIX RUN INTERRUPTED"),
		"%s: applied %d, pending %d of %d (%s); kill -> serving %v, -> first load reply %v",
		run.Status, run.Applied, run.Pending, run.Players, run.Error, serving.Round(time.Millisecond), firstReply.Round(time.Millisecond))

	t0 = time.Now()
	if err := p.Admin(e.ctx, "POST", "/v1/fix/resume?run="+run.ID, nil); err != nil {
		return err
	}
	if run, err = e.waitRun(p, run.ID, g.changing()); err != nil {
		return err
	}
	e.check(sc, "resume finishes the run",
		run.Status == "done" && run.Resumes == 1 && run.Applied == g.changing() && run.Skipped == g.poor.n && run.Failed == 0 && run.Pending == 0,
		"%s after %v: applied %d, skipped %d (under the threshold), failed %d, pending %d; resumes %d",
		run.Status, time.Since(t0).Round(time.Millisecond), run.Applied, run.Skipped, run.Failed, run.Pending, run.Resumes)

	// Every fixed loaded player shows its jump at its next reply.
	if err := e.poll(time.Minute, func() bool { return len(jumpers(l.Violations())) >= g.selected().n }); err != nil {
		return fmt.Errorf("the ledger saw %d of the %d loaded players' fixes: %v", len(jumpers(l.Violations())), g.selected().n, l.Violations())
	}
	if err := waitAcks(e.ctx, l, l.Acked()+500, 30*time.Second); err != nil {
		return stalled(l, err)
	}
	res := l.Stop()
	ck := loadgen.Verify(e.ctx, p.Addr, res, 10*time.Second)
	e.checkFixedOnce(p, g, predicted, run, res, ck)
	e.check(sc, "load ran across the kill", res.Failed == 0 && res.Reconnects > 0,
		"%d replies, %d failed; %d requests cut by the kill, %d reconnects; %.0f/s, p99 %v%s",
		res.Requests, res.Failed, res.Transport, res.Reconnects, res.Throughput, res.P99, codes(res))

	e.checkUndo(p, g, run, res)
	audit, err := os.ReadFile(filepath.Join(cfg.Dir, "data", "audit.log"))
	want := []string{
		fmt.Sprintf("done: applied %d, unchanged 0, skipped %d, failed 0, pending 0 of %d players; snapshot %s", g.changing(), g.poor.n, run.Players, run.Snapshot),
		"fix undo " + run.ID,
	}
	_, snapErr := os.Stat(run.Snapshot)
	e.check(sc, "audit log and snapshot", err == nil && snapErr == nil && strings.Contains(string(audit), want[0]) && strings.Contains(string(audit), want[1]),
		"audit: %q and %q; snapshot kept beside the run: %s%s", clip(want[0], 70), want[1], filepath.Base(run.Snapshot), errText(cmp(err, snapErr)))
	return nil
}

// makeRich gives the rich players richCoins with one work each under a
// config whose work reward is the bug, then the poor ones one work at the
// normal reward.
func (e *env) makeRich(p *hostproc.Proc, cfg hostproc.Config, g repairPlayers) error {
	bug := filepath.Join(cfg.Dir, "data", "config", "bug.json")
	if err := os.WriteFile(bug, fmt.Appendf(nil, `{"work_reward": %d}`, richCoins), 0o600); err != nil {
		return err
	}
	if err := p.Admin(e.ctx, "POST", "/v1/reload", nil); err != nil {
		return err
	}
	for _, s := range []span{g.quietA, g.selected(), g.quietB} {
		for id := range s.ids {
			if err := loginAndWork(p, id); err != nil {
				return err
			}
		}
	}
	if err := os.Remove(bug); err != nil {
		return err
	}
	if err := p.Admin(e.ctx, "POST", "/v1/reload", nil); err != nil {
		return err
	}
	for id := range g.poor.ids {
		if err := loginAndWork(p, id); err != nil {
			return err
		}
	}
	return nil
}

// checkDryRun compares a dry run with what the players hold: every rich
// player listed once, coins to a tenth (the quiet ones from exactly
// richCoins), the poor ones not selected, and the quiet players' coins
// unchanged after it. It returns the prediction by player and what is
// wrong ("" if nothing).
func (e *env) checkDryRun(p *hostproc.Proc, g repairPlayers, dry *fixDryRun) (map[uint64]fixChange, string) {
	predicted := map[uint64]fixChange{}
	for _, pl := range dry.Players {
		c, ok := pl.coinsChange()
		switch {
		case !ok:
			return nil, fmt.Sprintf("player %d: changes %+v, want Coins only", pl.ID, pl.Changes)
		case c.After != c.Before/10:
			return nil, fmt.Sprintf("player %d: Coins %d -> %d, want a tenth", pl.ID, c.Before, c.After)
		case g.quiet(pl.ID) && c.Before != richCoins:
			return nil, fmt.Sprintf("quiet player %d: Coins %d -> %d, want %d before", pl.ID, c.Before, c.After, richCoins)
		case !g.quiet(pl.ID) && !g.selected().has(pl.ID):
			return nil, fmt.Sprintf("player %d listed, not one of the rich", pl.ID)
		}
		predicted[pl.ID] = c
	}
	tot := fixTotal{Field: "Coins", Players: g.changing()}
	for _, c := range predicted {
		tot.BeforeSum += c.Before
		tot.AfterSum += c.After
	}
	switch {
	case dry.Changed != g.changing() || len(predicted) != g.changing() || dry.Skipped != g.poor.n || dry.Failed != 0:
		return nil, fmt.Sprintf("%d would change (%d listed), %d skipped, want %d and %d", dry.Changed, len(predicted), dry.Skipped, g.changing(), g.poor.n)
	case !dry.Complete || dry.Committed:
		return nil, fmt.Sprintf("complete %t, committed %t", dry.Complete, dry.Committed)
	case len(dry.Totals) != 1 || dry.Totals[0] != tot:
		return nil, fmt.Sprintf("totals %+v", dry.Totals)
	}
	for _, s := range []span{g.quietA, g.quietB} {
		for id := range s.ids {
			if c, err := e.coins(p, id); err != nil || c != richCoins {
				return nil, fmt.Sprintf("after the dry run player %d has %d coins (%v), want %d", id, c, err, richCoins)
			}
		}
	}
	return predicted, ""
}

// waitRun polls a run until it is no longer running and returns it with
// up to diffs players' changes.
func (e *env) waitRun(p *hostproc.Proc, id string, diffs int) (fixRunDoc, error) {
	var run fixRunDoc
	var err error
	path := fmt.Sprintf("/v1/fix/runs?diffs=%d&run=%s", diffs, id)
	if perr := e.poll(2*time.Minute, func() bool {
		err = p.Admin(e.ctx, "GET", path, &run)
		return err == nil && run.Status != "running"
	}); perr != nil {
		return run, fmt.Errorf("fix run %s still %s: %w%s", id, run.Status, perr, errText(err))
	}
	return run, nil
}

// The ledger's words for a reply, or a balance read after a reconnect,
// that does not follow from what it knew (internal/loadgen's violations).
var (
	replyJumpRE  = regexp.MustCompile(`^player (\d+) "[^"]*": reply says (-?\d+) coins, ledger expects -?\d+ \((-?\d+) ([+-]\d+)\)$`)
	settleJumpRE = regexp.MustCompile(`^player (\d+) after reconnect: server has (-?\d+) coins, ledger (-?\d+) \(pending "([^"]*)"\)$`)
)

// jump is one difference the ledger saw for a player: its coins went from
// prev to now, around a command that changed them by one of deltas. A
// reply's command ran after the fix (else its reply would not show the
// fix); a command whose reply was lost to the kill may have run before it.
type jump struct {
	prev, now int64
	deltas    []int64
	lost      bool
}

func parseJump(v string) (uint64, jump, bool) {
	n := func(s string) int64 { x, _ := strconv.ParseInt(s, 10, 64); return x }
	if m := replyJumpRE.FindStringSubmatch(v); m != nil {
		id, _ := strconv.ParseUint(m[1], 10, 64)
		return id, jump{prev: n(m[3]), now: n(m[2]), deltas: []int64{n(m[4])}}, true
	}
	if m := settleJumpRE.FindStringSubmatch(v); m != nil {
		id, _ := strconv.ParseUint(m[1], 10, 64)
		// The lost command ran or not, before or after the fix.
		deltas := []int64{0}
		if strings.Fields(m[4])[0] == "work" {
			deltas = append(deltas, 10, 20) // loadgen's WorkDeltas: coin v1, v2
		}
		return id, jump{prev: n(m[3]), now: n(m[2]), deltas: deltas, lost: true}, true
	}
	return 0, jump{}, false
}

// jumpers are the players with a jump among the violations.
func jumpers(violations []string) map[uint64]bool {
	out := map[uint64]bool{}
	for _, v := range violations {
		if id, _, ok := parseJump(v); ok {
			out[id] = true
		}
	}
	return out
}

// is reports whether the jump is the fix's change c.
func (j jump) is(c fixChange) bool {
	for _, d := range j.deltas {
		if j.prev == c.Before && j.now == c.After+d || j.lost && j.prev+d == c.Before && j.now == c.After {
			return true
		}
	}
	return false
}

// checkFixedOnce proves every selected player fixed exactly once: the run
// handled each once, a quiet player holds what the dry run predicted, and
// the ledger saw each fixed loaded player's coins jump once, exactly as
// the run recorded (prev -> a tenth), and nothing else.
func (e *env) checkFixedOnce(p *hostproc.Proc, g repairPlayers, predicted map[uint64]fixChange, run fixRunDoc, res *loadgen.Result, ck *loadgen.Check) {
	const sc = "repair"
	record := map[uint64]fixChange{}
	var bad []string
	for _, d := range run.Diffs {
		c, ok := d.coinsChange()
		_, dup := record[d.ID]
		if _, want := predicted[d.ID]; !ok || dup || !want || c.After != c.Before/10 {
			bad = append(bad, fmt.Sprintf("run record of player %d: %+v (twice: %t)", d.ID, d.Changes, dup))
		}
		record[d.ID] = c
	}
	quiet := 0
	for id, c := range predicted {
		if !g.quiet(id) {
			continue
		}
		quiet++
		if record[id] != c {
			bad = append(bad, fmt.Sprintf("quiet player %d: the run recorded %+v, the dry run predicted %+v", id, record[id], c))
		}
		if got, err := e.coins(p, id); err != nil || got != c.After {
			bad = append(bad, fmt.Sprintf("quiet player %d: %d coins (%v), the dry run predicted %d", id, got, err, c.After))
		}
	}
	jumps := map[uint64]int{}
	var unexplained []string
	atReconnect := 0
	for _, v := range res.Violations {
		id, j, ok := parseJump(v)
		if c, fixed := record[id]; ok && fixed && g.selected().has(id) && j.is(c) {
			jumps[id]++
			if j.lost {
				atReconnect++
			}
			continue
		}
		unexplained = append(unexplained, v)
	}
	once := 0
	for id := range g.selected().ids {
		if jumps[id] == 1 {
			once++
		} else {
			bad = append(bad, fmt.Sprintf("loaded player %d: the ledger saw its fix %d times", id, jumps[id]))
		}
	}
	e.check(sc, "every selected player fixed exactly once", len(record) == g.changing() && len(bad) == 0,
		"%d players in the run's record, %d problems; %d quiet players hold the dry run's Coins (%d); %d of %d loaded players fixed once in the ledger, at the value the load had made%s",
		len(record), len(bad), quiet, richCoins/10, once, g.selected().n, first(bad))
	viol := append(unexplained, ck.Violations...)
	accounted := len(res.Violations) - len(unexplained)
	e.check(sc, "ledger exact apart from the fix", len(viol) == 0 && ck.Players == g.loaded.n,
		"%d differences, each one fix's recorded Coins before -> after (%d in a reply, %d at a reconnect), %d others; then %s%s",
		accounted, accounted-atReconnect, atReconnect, len(unexplained), ck, first(viol))
}

// checkUndo undoes the run with the load stopped: a player whose coins
// still hold what the fix wrote gets its value from before back; a loaded
// player that played since is a conflict, left as the ledger has it.
func (e *env) checkUndo(p *hostproc.Proc, g repairPlayers, run fixRunDoc, res *loadgen.Result) {
	const sc = "repair"
	var undone fixRunDoc
	if err := p.Admin(e.ctx, "POST", "/v1/fix/undo?run="+run.ID, &undone); err != nil || undone.Undo == nil {
		e.check(sc, "undo: back, or listed as conflict", false, "POST /v1/fix/undo: %v", err)
		return
	}
	u := undone.Undo
	conflicts := map[uint64]int64{} // what the undo says the player holds now
	for _, c := range u.Conflicts {
		if len(c.Changes) == 1 && c.Changes[0].Field == "Coins" {
			conflicts[c.ID] = c.Changes[0].After
		}
	}
	var bad []string
	restored, wantConflicts := 0, 0
	for _, d := range run.Diffs {
		c, _ := d.coinsChange()
		want := c.Before // unchanged since the fix: put back
		if !g.quiet(d.ID) {
			if ledger := res.Accounts[d.ID].Coins; ledger != c.After {
				want = ledger // played since: a conflict, left alone
				wantConflicts++
				if now, listed := conflicts[d.ID]; !listed || now != ledger {
					bad = append(bad, fmt.Sprintf("player %d (ledger %d, fix wrote %d) not listed as a conflict with its coins", d.ID, ledger, c.After))
				}
			}
		}
		if want == c.Before {
			restored++
		}
		if got, err := e.coins(p, d.ID); err != nil || got != want {
			bad = append(bad, fmt.Sprintf("player %d: %d coins after the undo (%v), want %d", d.ID, got, err, want))
		}
	}
	for id := range g.loaded.ids {
		if g.selected().has(id) {
			continue
		}
		if got, err := e.coins(p, id); err != nil || got != res.Accounts[id].Coins {
			bad = append(bad, fmt.Sprintf("unselected player %d: %d coins after the undo (%v), ledger %d", id, got, err, res.Accounts[id].Coins))
		}
	}
	ok := u.Restored == restored && len(u.Conflicts) == wantConflicts && u.Already == 0 && u.Forced == 0 && u.Missing == 0 && len(bad) == 0
	e.check(sc, "undo: back, or listed as conflict", ok,
		"restored %d (want %d: every player unchanged since, to its coins before), conflicts %d (want %d: loaded players that played since, left as the ledger has them)%s",
		u.Restored, restored, len(u.Conflicts), wantConflicts, first(bad))
}

// coins is a player's committed coins, read through the admin API.
func (e *env) coins(p *hostproc.Proc, id uint64) (int64, error) {
	var pl struct{ State struct{ Coins int64 } }
	err := p.Admin(e.ctx, "GET", fmt.Sprintf("/v1/player?id=%d", id), &pl)
	return pl.State.Coins, err
}

func totals(ts []fixTotal) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = fmt.Sprintf("%s: %d players, total %d -> %d", t.Field, t.Players, t.BeforeSum, t.AfterSum)
	}
	return strings.Join(parts, "; ")
}

func because(why string) string {
	if why == "" {
		return ""
	}
	return "; " + why
}
