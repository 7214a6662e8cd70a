package host_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hothost/hothost/client"
	"github.com/hothost/hothost/host"
	"github.com/hothost/hothost/internal/hostproc"
	"github.com/hothost/hothost/internal/loadgen"
)

// The repair tests run the example repair plugins/fixes/coinfix (coins
// divided by 10 above 10,000) on players that a config with a 10,000x
// work reward made rich: the bug it repairs.

// coinfix is the built repair plugin, once per test binary.
var coinfix = sync.OnceValues(func() (string, error) {
	if err := setup(); err != nil {
		return "", err
	}
	return bins.Plugin("plugins/fixes/coinfix", "coinfix", "1.0.0", staging)
})

// fixHost starts a host with coinfix in its fix folder and rich players
// first..first+n-1, each with 100,000 coins from one `work`.
func fixHost(t *testing.T, first uint64, n int, cfg ...string) (*hostproc.Proc, hostproc.Config) {
	t.Helper()
	so, err := coinfix()
	if err != nil {
		t.Fatal(err)
	}
	p, c := startHost(t, cfg...)
	fixes := filepath.Join(c.Dir, "data", "fixes")
	if err := os.MkdirAll(fixes, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := hostproc.Install(so, fixes); err != nil {
		t.Fatal(err)
	}
	bug := filepath.Join(c.Dir, "data", "config", "bug.json")
	setReward := func(body string) {
		if body == "" {
			os.Remove(bug)
		} else if err := os.WriteFile(bug, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := p.Admin(context.Background(), "POST", "/v1/reload", nil); err != nil {
			t.Fatal(err)
		}
	}
	setReward(`{"work_reward": 100000}`)
	for id := first; id < first+uint64(n); id++ {
		if r := do(t, dial(t, p, id), "work"); !strings.HasPrefix(r.Text, "coins 100000 ") {
			t.Fatalf("player %d: %s", id, r)
		}
	}
	setReward("")
	return p, c
}

// Answers of the repair API, as far as the tests read them.
type (
	fixChange struct {
		Field         string
		Before, After float64
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
	fixRun struct {
		ID, Status, Error, Snapshot                           string
		Players, Applied, Unchanged, Skipped, Failed, Pending int
		Totals                                                []fixTotal
		Diffs                                                 []fixPlayer
		Undo                                                  *struct {
			Restored, Already, Forced int
			Conflicts                 []struct {
				ID      uint64
				Changes []fixChange `json:"changed_since"`
			}
		}
	}
)

func fixAdmin(t *testing.T, p *hostproc.Proc, method, path string, out any) {
	t.Helper()
	if err := p.Admin(context.Background(), method, path, out); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
}

// waitRun polls the run until it is no longer running.
func waitRun(t *testing.T, p *hostproc.Proc, id string) fixRun {
	t.Helper()
	for {
		var run fixRun
		fixAdmin(t, p, "GET", "/v1/fix/runs?diffs=1000&run="+id, &run)
		if run.Status != "running" {
			return run
		}
		time.Sleep(10 * time.Millisecond) // polling the run's status
	}
}

func coins(t *testing.T, p *hostproc.Proc, id uint64) int64 {
	t.Helper()
	var pl struct{ State struct{ Coins int64 } }
	fixAdmin(t, p, "GET", fmt.Sprintf("/v1/player?id=%d", id), &pl)
	return pl.State.Coins
}

// richPlayer drives one rich player with `work` while the fix runs and keeps
// every coin value it was told, from a balance before to one after.
type richPlayer struct {
	id    uint64
	seen  []int64
	works []bool // seen[i] came from a work (else a balance)
	err   error
}

func (d *richPlayer) run(c *client.Conn, stop <-chan struct{}) {
	read := func(line string) bool {
		r, err := c.Do(line)
		n, ok := r.Int("coins")
		if err != nil || !r.OK || !ok {
			d.err = fmt.Errorf("player %d %s: %v %v", d.id, line, r, err)
			return false
		}
		d.seen, d.works = append(d.seen, n), append(d.works, line == "work")
		return true
	}
	if !read("balance") {
		return
	}
	for {
		select {
		case <-stop:
			read("balance")
			return
		default:
			if !read("work") {
				return
			}
		}
	}
}

// fixedOnce checks that the values the player was told show the fix (a
// tenth) exactly once, between two of its own requests: each step is a
// work's +10 or a balance's +0, and one step has the fix in it.
func (d *richPlayer) fixedOnce() error {
	if d.err != nil {
		return d.err
	}
	fixes := 0
	for i := 1; i < len(d.seen); i++ {
		prev, cur, add := d.seen[i-1], d.seen[i], int64(0)
		if d.works[i] {
			add = 10
		}
		switch cur {
		case prev + add:
		case prev/10 + add:
			fixes++
		default:
			return fmt.Errorf("player %d: %d then %d", d.id, prev, cur)
		}
	}
	if fixes != 1 {
		return fmt.Errorf("player %d: fixed %d times (coins seen %v)", d.id, fixes, d.seen)
	}
	return nil
}

// TestFixDryRunApplyUndo: the dry run lists exactly what the fix would
// change and commits nothing; the apply, under load, takes a snapshot and
// fixes every selected player exactly once, ordered with the player's own
// requests, while the ledger of the other players stays exact; undo puts
// back the fixed field of every player whose coins did not change since,
// and lists the others as conflicts until forced.
func TestFixDryRunApplyUndo(t *testing.T) {
	t.Parallel()
	const first, n, driven = 1001, 40, 6
	p, cfg := fixHost(t, first, n)
	var dry struct {
		Changed, Skipped int
		Totals           []fixTotal
		Players          []fixPlayer
		Committed        bool
	}
	fixAdmin(t, p, "POST", "/v1/fix/dry-run?file=coinfix-1.0.0.so", &dry)
	if dry.Changed != n || len(dry.Players) != n || dry.Committed {
		t.Fatalf("dry run: %d changed, %d listed, committed %v; want %d", dry.Changed, len(dry.Players), dry.Committed, n)
	}
	for i, pl := range dry.Players {
		want := []fixChange{{"Coins", 100000, 10000}}
		if pl.ID != first+uint64(i) || fmt.Sprint(pl.Changes) != fmt.Sprint(want) {
			t.Fatalf("dry run player %d: %+v, want %+v", pl.ID, pl.Changes, want)
		}
	}
	if want := (fixTotal{"Coins", n, 100000 * n, 10000 * n}); len(dry.Totals) != 1 || dry.Totals[0] != want {
		t.Fatalf("dry run totals %+v, want %+v", dry.Totals, want)
	}
	if c := coins(t, p, first); c != 100000 {
		t.Fatalf("the dry run committed: player %d has %d coins", first, c)
	}
	out, err := exec.Command(bins.Hotctl, "-socket", p.Socket, "fix", "dry-run", "coinfix-1.0.0.so", "-ids", "1001-1002,5").CombinedOutput()
	for _, line := range []string{"DRY RUN of coinfix 1.0.0: nothing was changed", "player 1002\n  Coins: 100000 -> 10000\n",
		"looked at 3 players: 2 would change, 0 unchanged, 1 not selected, 0 failed", "Coins: 2 players, total 200000 -> 20000"} {
		if err != nil || !strings.Contains(string(out), line) {
			t.Fatalf("hotctl fix dry-run (%v) does not say %q:\n%s", err, line, out)
		}
	}

	addr := p.Addr
	load, err := loadgen.Start(context.Background(), loadgen.Config{Addr: func() string { return addr }, Conns: 6, Players: 6,
		FirstPlayer: 1, Tickets: p.Tickets(), Mix: []loadgen.Weighted{{Cmd: "work", Weight: 3}, {Cmd: "balance", Weight: 1}},
		Duration: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	waitAcks(t, load, 100)
	stop := make(chan struct{})
	players := make([]*richPlayer, driven)
	var wg sync.WaitGroup
	for i := range players {
		players[i] = &richPlayer{id: first + uint64(i)}
		c := dial(t, p, players[i].id)
		wg.Add(1)
		go func() { defer wg.Done(); players[i].run(c, stop) }()
	}
	var started fixRun
	fixAdmin(t, p, "POST", "/v1/fix/apply?file=coinfix-1.0.0.so", &started)
	run := waitRun(t, p, started.ID)
	close(stop)
	wg.Wait()
	res := load.Stop()
	if run.Status != "done" || run.Applied != n || run.Players != n || run.Pending != 0 {
		t.Fatalf("run: %+v", run)
	}
	if _, err := os.Stat(run.Snapshot); err != nil || !strings.HasPrefix(run.Snapshot, filepath.Join(cfg.Dir, "data", "fixes", "runs")) {
		t.Fatalf("the snapshot named by the run (%q) is not kept beside it: %v", run.Snapshot, err)
	}
	for _, d := range players {
		if err := d.fixedOnce(); err != nil {
			t.Error(err)
		}
	}
	for id := uint64(first + driven); id < first+n; id++ {
		if c := coins(t, p, id); c != 10000 {
			t.Fatalf("player %d has %d coins after the fix, want 10000", id, c)
		}
	}
	if res.Failed > 0 || res.Transport > 0 {
		t.Fatalf("load during the fix: %d failed, %d lost: %v", res.Failed, res.Transport, res.Codes)
	}
	verifyLedger(t, p, res)
	audit, err := os.ReadFile(filepath.Join(cfg.Dir, "data", "audit.log"))
	if want := fmt.Sprintf("done: applied %d, unchanged 0, skipped 0, failed 0, pending 0 of %d players; snapshot %s", n, n, run.Snapshot); err != nil || !strings.Contains(string(audit), want) {
		t.Fatalf("audit log lacks %q (%v)", want, err)
	}

	// Driven players worked after the fix: their coins are conflicts.
	var undone fixRun
	fixAdmin(t, p, "POST", "/v1/fix/undo?run="+run.ID, &undone)
	u := undone.Undo
	if u == nil || u.Restored != n-driven || len(u.Conflicts) != driven || u.Conflicts[0].ID != first || u.Conflicts[0].Changes[0].Field != "Coins" {
		t.Fatalf("undo: %+v", u)
	}
	for id := uint64(first + driven); id < first+n; id++ {
		if c := coins(t, p, id); c != 100000 {
			t.Fatalf("player %d has %d coins after the undo, want 100000", id, c)
		}
	}
	if c := coins(t, p, first); c == 100000 || c < 10000 {
		t.Fatalf("conflicting player %d was changed by the undo: %d coins", first, c)
	}
	before := map[uint64]int64{}
	for _, d := range run.Diffs {
		before[d.ID] = int64(d.Changes[0].Before)
	}
	var forced fixRun
	fixAdmin(t, p, "POST", "/v1/fix/undo?force=1&run="+run.ID, &forced)
	if u := forced.Undo; u.Forced != driven || u.Already != n-driven || len(u.Conflicts) != 0 {
		t.Fatalf("forced undo: %+v", u)
	}
	for id := uint64(first); id < first+driven; id++ {
		if c := coins(t, p, id); c != before[id] {
			t.Fatalf("forced undo: player %d has %d coins, want %d from before the fix", id, c, before[id])
		}
	}
}

// TestFixKilledMidRunResumes kills the host (kill -9, from inside, at
// the exact instant) after an intent is durable but before its commit, and
// after a commit but before its record: the next start settles the run
// from the players' values, and a resume fixes every selected player
// exactly once.
func TestFixKilledMidRunResumes(t *testing.T) {
	t.Parallel()
	const first, n = 2001, 60
	for _, point := range []string{"intent", "commit"} {
		t.Run(point, func(t *testing.T) {
			p, cfg := fixHost(t, first, n)
			p.Stop()
			cfg.Env = []string{host.FixKillEnv + "=" + point + ":" + fmt.Sprint(n/2)}
			p = start(t, cfg)
			// The host may die before it answers: the run is found after the restart.
			p.Admin(context.Background(), "POST", "/v1/fix/apply?file=coinfix-1.0.0.so", nil)
			<-p.Done()
			if !strings.Contains(p.Cmd.ProcessState.String(), "killed") {
				t.Fatalf("the host ended %s, want killed", p.Cmd.ProcessState)
			}
			cfg.Env = nil
			p = start(t, cfg)
			var runs []fixRun
			fixAdmin(t, p, "GET", "/v1/fix/runs", &runs)
			if len(runs) != 1 {
				t.Fatalf("%d runs after the kill, want 1: %+v", len(runs), runs)
			}
			run := runs[0]
			// Killed at the (n/2)th intent, that player is not fixed; at the
			// (n/2)th commit, at least n/2 are.
			if run.Status != "interrupted" || run.Pending == 0 || run.Applied+run.Pending != n ||
				point == "commit" && run.Applied < n/2 || point == "intent" && run.Applied >= n/2 {
				t.Fatalf("after the kill: %+v", run)
			}
			if !strings.Contains(p.Log(), "FIX RUN INTERRUPTED") {
				t.Fatalf("the restart does not say the run was interrupted:\n%s", p.Log())
			}
			fixAdmin(t, p, "POST", "/v1/fix/resume?run="+run.ID, nil)
			if run = waitRun(t, p, run.ID); run.Status != "done" || run.Applied != n {
				t.Fatalf("resumed run: %+v", run)
			}
			for id := uint64(first); id < first+n; id++ {
				if c := coins(t, p, id); c != 10000 {
					t.Fatalf("player %d has %d coins, want 10000: fixed once", id, c)
				}
			}
		})
	}
}

// TestFixDeadlineStopsAndResumes: a run whose deadline passes stops with
// the players it has not reached pending, says so in the audit log, and a
// resume finishes it.
func TestFixDeadlineStopsAndResumes(t *testing.T) {
	t.Parallel()
	const first, n = 4001, 5
	p, cfg := fixHost(t, first, n)
	var started fixRun
	fixAdmin(t, p, "POST", "/v1/fix/apply?file=coinfix-1.0.0.so&ids=4001-4005&deadline=1ns", &started)
	run := waitRun(t, p, started.ID)
	if run.Status != "deadline" || run.Pending != n || run.Applied != 0 {
		t.Fatalf("past its deadline: %+v", run)
	}
	if err := p.Admin(context.Background(), "POST", "/v1/fix/cancel?run="+run.ID, nil); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("cancelling a stopped run: %v", err)
	}
	audit, err := os.ReadFile(filepath.Join(cfg.Dir, "data", "audit.log"))
	if err != nil || !strings.Contains(string(audit), "deadline: applied 0, unchanged 0, skipped 0, failed 0, pending 5 of 5 players") {
		t.Fatalf("audit log (%v):\n%s", err, audit)
	}
	fixAdmin(t, p, "POST", "/v1/fix/resume?run="+run.ID, nil)
	if run = waitRun(t, p, run.ID); run.Status != "done" || run.Applied != n {
		t.Fatalf("resumed: %+v", run)
	}
	for id := uint64(first); id < first+n; id++ {
		if c := coins(t, p, id); c != 10000 {
			t.Fatalf("player %d: %d coins, want 10000", id, c)
		}
	}
}

// TestFixHungApplyIsAbandoned: a fix whose Apply never returns for one
// player costs that player's fix and the run, never the player's lane:
// nothing of it is committed and the player plays on. Not parallel: the
// other players' Applies have 300 ms each (see e2e_test.go).
func TestFixHungApplyIsAbandoned(t *testing.T) {
	const first, n, hung = 3001, 5, 3003
	p, cfg := fixHost(t, first, n)
	if _, err := bins.Plugin("host/testdata/fixes/hangfix", "hangfix", "1.0.0", filepath.Join(cfg.Dir, "data", "fixes")); err != nil {
		t.Fatal(err)
	}
	var started fixRun
	fixAdmin(t, p, "POST", "/v1/fix/apply?file=hangfix-1.0.0.so&ids=3001-3005&player_timeout=300ms", &started)
	run := waitRun(t, p, started.ID)
	if run.Status != "failed" || !strings.Contains(run.Error, fmt.Sprintf("player %d", hung)) || run.Applied != n-1 || run.Pending != 1 {
		t.Fatalf("run with a hung Apply: %+v", run)
	}
	if r := do(t, dial(t, p, hung), "work"); r.Text != "coins 100010 level 0 v1" {
		t.Fatalf("the hung player after the run: %s", r)
	}
	if c := coins(t, p, first); c != 10000 {
		t.Fatalf("player %d: %d coins, want 10000", first, c)
	}
}
