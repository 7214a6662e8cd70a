package state

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The crash tests re-execute this test binary as a child process (the
// HOTHOST_STATE_CHILD variable picks what it does), kill it with SIGKILL,
// or let it kill itself at a chosen instant, and then open its segment
// here. Nothing is mocked: the child writes a real /dev/shm segment and
// dies holding it.

var chaos = flag.Bool("chaos", false, "run the kill storm with many more kills (also HOTHOST_CHAOS=1)")

const (
	childEnv = "HOTHOST_STATE_CHILD"
	dirEnv   = "HOTHOST_STATE_DIR"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		if err := runChild(mode, os.Getenv(dirEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childOptions are the options of the crash tests' segment, in the child
// and in the parent. The scrub is unthrottled, so that a parent's
// WaitScrub returns quickly.
func childOptions(dir string) Options {
	return Options{Name: "players", ShmDir: dir, Capacity: childCapacity, Lanes: 16, Logger: quietLogger(), ScrubRate: 1 << 30}
}

const childCapacity = 4096

// stormPlayers are updated under the invariant; churnPlayers are deleted
// and created again all the time, to crash in the middle of those too.
const stormPlayers, churnBase, churnPlayers = 64, 1 << 40, 32

func runChild(mode, dir string) error {
	switch mode {
	case "storm":
		return childStorm(dir)
	case "transfer-storm":
		return childTransfers(dir)
	case "timer-storm":
		return childTimers(dir)
	case "timer-due":
		return childTimerDue(dir)
	case "torn-update", "torn-create", "torn-alloc", "torn-delete", "torn-tx", "torn-timer":
		return childTorn(mode, dir)
	case "migrate-stop":
		return childMigrateStop(dir)
	case "recover-kill":
		// Recover what the previous child left, and die half way.
		testHookRecovered = func() {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			parkUntilKilled()
		}
		_, _, err := Open[Player](childOptions(dir))
		return err
	}
	return fmt.Errorf("unknown child mode %q", mode)
}

// childStorm updates players in a tight loop and reports each update that
// Update acknowledged as "id A\n". Reports are buffered (a 4 KiB write is
// atomic on a pipe), so the parent's kill lands anywhere in the loop, not
// just in a write system call.
func childStorm(dir string) error {
	// The scrub runs pass after pass while the storm commits, creates and
	// deletes: it must never take a healthy record for a damaged one.
	opts := childOptions(dir)
	opts.ScrubEvery = time.Millisecond
	s, _, err := Open[Player](opts)
	if err != nil {
		return err
	}
	for id := uint64(1); id <= stormPlayers; id++ {
		if _, err := s.Ensure(id); err != nil {
			return err
		}
	}
	w := bufio.NewWriterSize(os.Stdout, 4096)
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 7))
	for n := 0; ; n++ {
		id := 1 + rng.Uint64N(stormPlayers)
		var a int64
		err := s.Update(id, func(p *Player) error {
			p.step(id)
			a = p.A
			if n%50 == 0 { // a failing handler must change nothing
				return errors.New("refused")
			}
			return nil
		})
		if err == nil {
			fmt.Fprintf(w, "%d %d\n", id, a)
		}
		if n%1024 == 0 {
			if st := s.Scrub(); st.TotalFailed+st.Removed+st.Reindexed != 0 {
				return fmt.Errorf("the scrub found faults in a healthy store: %v %v", st, st.Problems)
			}
		}
		if n%16 == 0 {
			c := churnBase + rng.Uint64N(churnPlayers)
			if err := s.Delete(c); err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			if _, err := s.Ensure(c); err != nil {
				return err
			}
		}
	}
}

// TestKillStorm: a child updates players in a tight loop keeping B == 2*A
// and a checksum over the record; the parent SIGKILLs it at random
// instants, reopens the segment, and checks every player's invariant and
// that every update the child was told had committed is there.
func TestKillStorm(t *testing.T) {
	total, repaired := killStorm(t, shmDir(t), "storm", stormPlayers, nil)
	t.Logf("%d acknowledged updates checked, %d journal entries rolled back", total, repaired)
}

// TestKillStormTransfers: a child gives coins among a few players with
// RunMulti, the window between its record writes widened, and the parent
// SIGKILLs it at random instants: after every reopen the players are
// whole, every acknowledged transfer is there, and the coins add up to
// what the players started with.
func TestKillStormTransfers(t *testing.T) {
	dir := seededDir(t)
	total, repaired := killStorm(t, dir, "transfer-storm", transferPlayers, func(k int, s *Store[Player]) {
		if coins, _ := coinsAndSteps(t, s); coins != transferPlayers*startCoins {
			t.Fatalf("kill %d: total coins %d, want %d", k, coins, transferPlayers*startCoins)
		}
	})
	// Nearly all of the child's time is inside a commit: a storm in which
	// no kill landed in one would have proved nothing.
	if repaired == 0 {
		t.Fatal("no kill landed inside a transaction's commit")
	}
	t.Logf("%d acknowledged steps checked, %d transactions rolled back", total, repaired)
}

const transferPlayers = 10

// seededDir is a directory holding the storms' segment, with players
// 1..transferPlayers of startCoins each.
func seededDir(t *testing.T) string {
	dir := shmDir(t)
	s, _ := mustOpen[Player](t, childOptions(dir))
	seedCoins(t, s, transferPlayers)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// killWithin bounds how long a storm child commits before its kill.
const killWithin = 3 * time.Millisecond

// killStorm runs a child in mode, which acknowledges commits on stdout as
// "id A" lines, and SIGKILLs it at a random instant, over and over on one
// segment. After each kill it reopens the segment and checks that
// recovery took the fast path and lost nothing, that players 1..players
// are whole and hold every acknowledged step, that the index and the
// scrub agree with the records, and whatever check adds. It returns the
// acknowledgements read and the journal entries recovery applied.
func killStorm(t *testing.T, dir, mode string, players uint64, check func(k int, s *Store[Player])) (total, repaired int) {
	t.Helper()
	kills := 50
	if *chaos || os.Getenv("HOTHOST_CHAOS") == "1" {
		kills = 1000
	}
	if testing.Short() {
		kills = 10
	}
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 1))
	acked := map[uint64]int64{}
	for k := range kills {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+mode, dirEnv+"="+dir)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(out)
		read := func() bool {
			line, err := r.ReadString('\n')
			if err != nil { // EOF, or a line cut by the kill: not acknowledged
				return false
			}
			f := strings.Fields(line)
			id, _ := strconv.ParseUint(f[0], 10, 64)
			a, _ := strconv.ParseInt(f[1], 10, 64)
			acked[id] = max(acked[id], a)
			total++
			return true
		}
		// Once the child commits, it is killed at a random instant within
		// a few milliseconds, on a timer: killing it as soon as some line
		// was read would land most kills where it just wrote that line
		// (writing woke the reader, and the scheduler may stop the
		// writer there).
		if read() {
			time.AfterFunc(time.Duration(rng.Int64N(int64(killWithin))), func() { cmd.Process.Signal(syscall.SIGKILL) })
		}
		for read() { // what the child flushed before it died was acknowledged
		}
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("kill %d: child ended with %v, want killed by SIGKILL", k, err)
		}

		s, rep := mustOpen[Player](t, childOptions(dir))
		if rep.How != Recovered || rep.Recovery == nil {
			t.Fatalf("kill %d: open after SIGKILL: %v", k, rep)
		}
		if rep.Recovery.Lost != 0 {
			t.Fatalf("kill %d: lost players %v: %v", k, rep.Recovery.LostIDs, rep)
		}
		repaired += rep.Recovery.Repaired
		for id := uint64(1); id <= players; id++ {
			p, err := s.Get(id)
			if err != nil {
				t.Fatalf("kill %d: player %d: %v", k, id, err)
			}
			if msg := p.consistent(id); msg != "" {
				t.Fatalf("kill %d: player %d torn: %s", k, id, msg)
			}
			// The child is the only writer: the stored A is the last
			// acknowledged one, or one newer whose ack never left it.
			if p.A < acked[id] {
				t.Fatalf("kill %d: player %d has A=%d, but A=%d was acknowledged", k, id, p.A, acked[id])
			}
		}
		s.Each(func(id uint64, p *Player) bool {
			if msg := p.consistent(id); msg != "" {
				t.Fatalf("kill %d: player %d torn: %s", k, id, msg)
			}
			return true
		})
		if rep.Recovery.IndexRebuilt != "" || rep.Recovery.Checked != 0 {
			t.Fatalf("kill %d: recovery took the slow path: %v", k, rep)
		}
		// The trusted index is exactly right (every record whole and found
		// at its slot, no other entry), and the scrub agrees.
		if err := s.verify(); err != nil {
			t.Fatalf("kill %d: after recovery: %v", k, err)
		}
		if st := waitScrub(t, s); st.TotalFailed+st.Removed+st.Reindexed != 0 || st.TotalChecked != int64(s.Len()) {
			t.Fatalf("kill %d: scrub after recovery: %v %v; want every one of %d records checked, no fault", k, st, st.Problems, s.Len())
		}
		if check != nil {
			check(k, s)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if total == 0 {
		t.Fatal("no commit was ever acknowledged")
	}
	return total, repaired
}

// TestKillStormTimers: a child schedules refunds (spending coins now,
// giving them back when the timer fires) and fires the due ones, the
// window between a commit's record write and its timer words widened,
// and the parent SIGKILLs it at random instants: after every reopen each
// player's coins plus its pending refunds are what it started with (no
// refund lost with its spending kept, none fired twice).
func TestKillStormTimers(t *testing.T) {
	dir := seededDir(t)
	total, repaired := killStorm(t, dir, "timer-storm", transferPlayers, func(k int, s *Store[Player]) {
		checkRefunds(t, s, transferPlayers)
	})
	if repaired == 0 {
		t.Fatal("no kill landed inside a commit")
	}
	t.Logf("%d acknowledged steps checked, %d transactions rolled back", total, repaired)
	// What is still pending fires once, and every coin comes back.
	s, _ := mustOpen[Player](t, childOptions(dir))
	defer s.Close()
	fireDue(t, s, time.Now().Add(time.Hour))
	for id := uint64(1); id <= transferPlayers; id++ {
		if p, _ := s.Get(id); p.Coins != startCoins || len(s.Timers(id)) != 0 {
			t.Fatalf("player %d: %d coins, %d timers pending after all fired", id, p.Coins, len(s.Timers(id)))
		}
	}
}

// childTimers schedules refunds for random players, due within a
// millisecond or two, and fires the due ones, in a loop; it reports each
// committed step as "id A\n", as childStorm does. The hook holds each
// commit between its record write and the rest (stormChild).
func childTimers(dir string) error {
	s, w, rng, err := stormChild(dir)
	if err != nil {
		return err
	}
	for {
		id := 1 + rng.Uint64N(transferPlayers)
		var a int64
		err := s.RunTx([]uint64{id}, nil, func(tx *Tx[Player]) error {
			err := construct(id, time.Duration(rng.IntN(2000))*time.Microsecond)(tx)
			a = tx.Values()[0].A
			return err
		})
		if err == nil {
			fmt.Fprintf(w, "%d %d\n", id, a)
		} else if !errors.Is(err, errPoor) && !errors.Is(err, ErrTimersFull) {
			return err
		}
		for _, t := range s.DueTimers(time.Now(), 4) {
			err := s.RunTimer(t, nil, func(tx *Tx[Player]) error {
				err := refund(t)(tx)
				a = tx.Values()[0].A
				return err
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "%d %d\n", t.Player, a)
		}
	}
}

// childTimerDue schedules a refund for player 1 due at once, and waits,
// once it is due, to be killed before firing it.
func childTimerDue(dir string) error {
	s, _, err := Open[Player](childOptions(dir))
	if err != nil {
		return err
	}
	if err := s.RunTx([]uint64{1}, nil, construct(1, 0)); err != nil {
		return err
	}
	if len(s.DueTimers(time.Now(), 1)) != 1 {
		return errors.New("the refund is not due")
	}
	fmt.Println("due")
	parkUntilKilled()
	return nil
}

// A timer due when its host is killed, before it fired, fires once after
// the restart (and a restart after that does not fire it again).
func TestTimerDueAcrossKill(t *testing.T) {
	dir := shmDir(t)
	opts := childOptions(dir)
	s, _ := mustOpen[Player](t, opts)
	seedCoins(t, s, 1)
	s.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=timer-due", dirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "due\n" {
		cmd.Process.Kill()
		t.Fatalf("child said %q, %v", line, err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	s, rep := mustOpen[Player](t, opts)
	if rep.How != Recovered || rep.Timers != 1 {
		t.Fatalf("open after the kill: %v", rep)
	}
	checkRefunds(t, s, 1)
	if n := fireDue(t, s, time.Now()); n != 1 {
		t.Fatalf("%d timers fired after the restart, want 1", n)
	}
	checkRefunds(t, s, 1)
	s.Close()
	s, rep = mustOpen[Player](t, opts)
	defer s.Close()
	if p, _ := s.Get(1); rep.Timers != 0 || p.Coins != startCoins || len(s.DueTimers(time.Now(), 1)) != 0 {
		t.Fatalf("after a second restart: %v, %d coins", rep, p.Coins)
	}
}

// A timer fired by a process killed half way through the commit (before
// or after the player's record was written): recovery leaves it pending
// with no effect, and it then fires once.
func TestRecoveryRollsBackTornTimer(t *testing.T) {
	for step := 0; step <= 1; step++ {
		for _, rk := range recoverKills {
			t.Run(fmt.Sprintf("write-%d/recovery-killed-%v", step, rk), func(t *testing.T) {
				s, rep := runTornChild(t, "torn-timer", rk, fmt.Sprintf("%s=%d", stepEnv, step))
				wantRepaired(t, rep, 1)
				pending := s.Timers(1)
				if p, _ := s.Get(1); len(pending) != 1 || p.Coins != 0 {
					t.Fatalf("after recovery: %d coins, timers %+v; want 0 and the timer pending", p.Coins, pending)
				}
				if err := s.RunTimer(pending[0], nil, bonus(pending[0])); err != nil {
					t.Fatal(err)
				}
				if err := s.RunTimer(pending[0], nil, bonus(pending[0])); !errors.Is(err, ErrTimerGone) {
					t.Fatalf("second firing: %v", err)
				}
				if p, _ := s.Get(1); p.Coins != 5 || p.A != 4 {
					t.Fatalf("after firing: %d coins, A %d; want 5, 4", p.Coins, p.A)
				}
			})
		}
	}
}

// bonus is RunTimer's callback for the torn-timer child's timer.
func bonus(t Timer) func(tx *Tx[Player]) error {
	return func(tx *Tx[Player]) error {
		n, _ := strconv.Atoi(t.Args)
		p := tx.Values()[0]
		p.Coins += int64(n)
		p.step(t.Player)
		return nil
	}
}

// childTransfers gives coins among players 1..transferPlayers with
// RunMulti in a loop, and reports each player of each acknowledged
// transfer as "id A\n" (buffered, as childStorm does).
func childTransfers(dir string) error {
	s, w, rng, err := stormChild(dir)
	if err != nil {
		return err
	}
	for {
		ids := pickPlayers(rng, transferPlayers, 4)
		vs := make([]Player, len(ids))
		err := s.RunMulti(ids, nil, func(ps []*Player) error {
			if err := transfer(ids, 1+rng.Int64N(200))(ps); err != nil {
				return err
			}
			for i, p := range ps {
				vs[i] = *p
			}
			return nil
		})
		switch {
		case err == nil:
			for i, id := range ids {
				fmt.Fprintf(w, "%d %d\n", id, vs[i].A)
			}
		case !errors.Is(err, errPoor):
			return err
		}
	}
}

// childTorn commits three updates of player 1, then stops a fourth
// operation half way through, exactly where a kill -9 would hurt most, and
// kills itself. The parent checks what recovery makes of it.
func childTorn(mode, dir string) error {
	s, _, err := Open[Player](childOptions(dir))
	if err != nil {
		return err
	}
	s.Ensure(1)
	for range 3 {
		if err := s.Update(1, func(p *Player) error { p.step(1); return nil }); err != nil {
			return err
		}
	}
	switch mode {
	case "torn-update":
		// commit's first steps, then half of the new value.
		ln := s.lane(1)
		slot, _, _, _ := s.find(1)
		_, rec, _ := s.pool.Lookup(int(slot))
		*ln.undo = *rec
		atomic.StoreUint64(ln.active, journalUpdate<<32|uint64(slot))
		atomic.StoreUint32(&rec.Seq, rec.Seq+1)
		rec.Val.A, rec.Val.Coins = 1000, 1000 // B, Check, Inv not yet
	case "torn-create":
		// Ensure(2) up to the index insert, not the journal retirement.
		h, rec, _ := s.allocCreating(s.lane(2).active)
		rec.ID = 2
		rec.Sum = recordSum(recordBytes(rec))
		s.idx.insert(2, uint32(h.Index()))
	case "torn-alloc":
		// Ensure(2) killed right after shmpool handed out a zeroed slot.
		s.allocCreating(s.lane(2).active)
	case "torn-tx":
		// A transfer among players 2, 1 and 3, killed before the record
		// write numbered by the step variable (the last step: after every
		// write, before the journal is cleared).
		for _, id := range []uint64{2, 3} {
			s.Ensure(id)
			s.Update(id, func(p *Player) error { p.step(id); p.Coins = startCoins; return nil })
		}
		if err := killAtStep(func(hook func(int)) { testHookTxWrite = hook }); err != nil {
			return err
		}
		ids := []uint64{2, 1, 3}
		if err := s.RunMulti(ids, nil, transfer(ids, 10)); err != nil {
			return err
		}
	case "torn-timer":
		// A timer of player 1 fired, killed before its record write (0)
		// or after it (1), before its removal and the journal's clearing.
		err := s.RunTx([]uint64{1}, nil, func(tx *Tx[Player]) error { _, err := tx.After(1, 0, "bonus", "5"); return err })
		if err != nil {
			return err
		}
		if err := killAtStep(func(hook func(int)) { testHookTxWrite = hook }); err != nil {
			return err
		}
		t := s.Timers(1)[0]
		if err := s.RunTimer(t, nil, bonus(t)); err != nil {
			return err
		}
	case "torn-delete":
		// Delete(ids[0]) of one cluster, killed before the index store
		// numbered by the step variable (past the last: after the delete).
		ids := clusterIDs(childCapacity, clusterLen)
		for _, id := range ids {
			s.Ensure(id)
			s.Update(id, func(p *Player) error { p.step(id); return nil })
		}
		if err := killAtStep(func(hook func(int)) { testHookIndexStore = hook }); err != nil {
			return err
		}
		if err := s.Delete(ids[0]); err != nil {
			return err
		}
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	parkUntilKilled()
	return nil
}

// stormChild opens the store of a storm child whose commits are held for
// a moment (a few microseconds of spinning) after their first record
// write: between two records, or between a record and the timer words.
// Most of the child's time is then spent inside a commit, so a kill at a
// random instant most likely lands there. Acknowledgements go to w.
func stormChild(dir string) (*Store[Player], *bufio.Writer, *rand.Rand, error) {
	testHookTxWrite = func(i int) {
		if i == 1 {
			spin(10000)
		}
	}
	s, _, err := Open[Player](childOptions(dir))
	return s, bufio.NewWriterSize(os.Stdout, 4096), rand.New(rand.NewPCG(uint64(os.Getpid()), 11)), err
}

// spin burns n rounds of the processor: a delay with no system call (a
// sleep costs a timer and a wake-up, ever so much longer than asked).
func spin(n int) {
	for i := range n {
		spinSink += mix(uint64(i))
	}
}

var spinSink uint64

// killAtStep sets a test hook (through set) that kills the process when
// it is called with the step variable's number.
func killAtStep(set func(hook func(n int))) error {
	step, err := strconv.Atoi(os.Getenv(stepEnv))
	if err != nil {
		return err
	}
	set(func(n int) {
		if n == step {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			parkUntilKilled()
		}
	})
	return nil
}

// parkUntilKilled blocks a child until SIGKILL arrives. (select{} would
// not do: with no other goroutine the runtime reports a deadlock and
// exits on its own.)
func parkUntilKilled() {
	for {
		time.Sleep(time.Hour)
	}
}

// killedChild runs a child in each of modes in turn (with env added), on
// one segment; each must die by SIGKILL. Then it opens what they left.
func killedChild(t *testing.T, modes []string, env ...string) (*Store[Player], *OpenReport) {
	t.Helper()
	dir := shmDir(t)
	for _, mode := range modes {
		runKilled(t, dir, mode, env...)
	}
	s, rep := mustOpen[Player](t, childOptions(dir))
	t.Cleanup(func() { s.Close() })
	return s, rep
}

// runKilled runs a child in mode on dir, which must die by SIGKILL.
func runKilled(t *testing.T, dir, mode string, env ...string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), childEnv+"="+mode, dirEnv+"="+dir), env...)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child %s ended with %v, want killed by SIGKILL", mode, err)
	}
}

// runTornChild checks what every torn child leaves: player 1 at its third
// commit, recovered by the fast path, the index exactly right, and a scrub
// that finds nothing wrong. With recoverKill a first recovery is killed
// half way (recover-kill) before the one checked.
func runTornChild(t *testing.T, mode string, recoverKill bool, env ...string) (*Store[Player], *OpenReport) {
	t.Helper()
	modes := []string{mode}
	if recoverKill {
		modes = append(modes, "recover-kill")
	}
	s, rep := killedChild(t, modes, env...)
	if rep.How != Recovered || rep.Recovery == nil || rep.Recovery.Lost != 0 || rep.Recovery.IndexRebuilt != "" {
		t.Fatalf("open after %s: %v; want recovered by the fast path, 0 lost", mode, rep)
	}
	p, err := s.Get(1)
	if err != nil || p.A != 3 || p.consistent(1) != "" {
		t.Fatalf("after %s player 1 = %+v, %v; want the third commit", mode, p, err)
	}
	if err := s.verify(); err != nil {
		t.Fatalf("after %s: %v", mode, err)
	}
	if st := waitScrub(t, s); st.TotalFailed+st.Removed+st.Reindexed != 0 {
		t.Fatalf("after %s: %v %v", mode, st, st.Problems)
	}
	return s, rep
}

func wantRepaired(t *testing.T, rep *OpenReport, n int) {
	t.Helper()
	if rep.Recovery.Repaired != n {
		t.Fatalf("%v: want %d journal entries applied", rep, n)
	}
}

// Each torn child's recovery runs once, and once after a first recovery
// killed half way (what it left must be recovered the same).
var recoverKills = []bool{false, true}

func TestRecoveryRollsBackTornUpdate(t *testing.T) {
	for _, rk := range recoverKills {
		t.Run(fmt.Sprint("recovery-killed-", rk), func(t *testing.T) {
			s, rep := runTornChild(t, "torn-update", rk)
			wantRepaired(t, rep, 1)
			if p, _ := s.Get(1); p.Coins != 0 {
				t.Fatalf("Coins = %d: the torn write survived", p.Coins)
			}
		})
	}
}

func TestRecoveryRemovesHalfCreatedPlayer(t *testing.T) {
	for _, mode := range []string{"torn-create", "torn-alloc"} {
		for _, rk := range recoverKills {
			t.Run(fmt.Sprintf("%s/recovery-killed-%v", mode, rk), func(t *testing.T) {
				s, rep := runTornChild(t, mode, rk)
				wantRepaired(t, rep, 1)
				if _, err := s.Get(2); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Get(2) after a killed Ensure: %v, want ErrNotFound", err)
				}
				if s.Len() != 1 {
					t.Fatalf("Len = %d, want 1", s.Len())
				}
				if created, err := s.Ensure(2); !created || err != nil {
					t.Fatalf("Ensure(2) after recovery: %v %v", created, err)
				}
			})
		}
	}
}

// A delete killed before each of its index stores in turn (a cluster of
// clusterLen players with one home; deleting the first shifts every other
// back): the fast path finishes it, the others keep their values, and the
// index is exactly right. The step past the last store is a delete that
// finished before the kill.
func TestRecoveryFinishesTornDelete(t *testing.T) {
	ids := clusterIDs(childCapacity, clusterLen)
	for step := 0; step <= clusterLen+1; step++ {
		for _, rk := range recoverKills {
			if rk && step > clusterLen {
				continue // the delete finished: recovery has nothing to do, nowhere to be killed
			}
			t.Run(fmt.Sprintf("store-%d/recovery-killed-%v", step, rk), func(t *testing.T) {
				tornDelete(t, ids, step, rk)
			})
		}
	}
}

// tornDelete checks what a delete killed before index store step leaves.
func tornDelete(t *testing.T, ids []uint64, step int, recoverKill bool) {
	s, rep := runTornChild(t, "torn-delete", recoverKill, fmt.Sprintf("%s=%d", stepEnv, step))
	wantRepaired(t, rep, min(1, clusterLen+1-step)) // the last store is the hole's zero
	if _, err := s.Get(ids[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted player: %v, want ErrNotFound", err)
	}
	for _, id := range ids[1:] {
		if p, err := s.Get(id); err != nil || p.A != 1 || p.consistent(id) != "" {
			t.Fatalf("player %d of the cluster: %+v, %v", id, p, err)
		}
	}
	if s.Len() != clusterLen {
		t.Fatalf("Len = %d, want %d", s.Len(), clusterLen)
	}
	if created, err := s.Ensure(ids[0]); !created || err != nil {
		t.Fatalf("Ensure of the deleted player: %v %v", created, err)
	}
}

// A transfer among three players killed before each of its record writes,
// and after the last one before the journal is cleared: recovery rolls
// every player back (the transaction was never acknowledged), and the
// coins add up. Player 1 (checked by runTornChild) is one of the three.
func TestRecoveryRollsBackTornTransaction(t *testing.T) {
	for step := 0; step <= 3; step++ {
		for _, rk := range recoverKills {
			t.Run(fmt.Sprintf("write-%d/recovery-killed-%v", step, rk), func(t *testing.T) {
				s, rep := runTornChild(t, "torn-tx", rk, fmt.Sprintf("%s=%d", stepEnv, step))
				wantRepaired(t, rep, 1)
				for _, id := range []uint64{2, 3} {
					if p, err := s.Get(id); err != nil || p.A != 1 || p.Coins != startCoins {
						t.Fatalf("player %d = A %d, %d coins, %v; want its value before the transfer", id, p.A, p.Coins, err)
					}
				}
			})
		}
	}
}

// A crashed segment whose transaction journal is prepared, opened by a
// build whose T changed: the migration reads the players from the
// journal's undo records, as recovery would have restored them.
func TestMigrationRollsBackTornTransaction(t *testing.T) {
	dir := shmDir(t)
	runKilled(t, dir, "torn-tx", stepEnv+"=2") // two of three records written
	opts := childOptions(dir)
	s, rep := mustOpen[PlayerWide](t, opts)
	defer s.Close()
	if rep.How != Migrated || rep.Recovery == nil || rep.Recovery.Lost != 0 {
		t.Fatalf("open of a crashed segment by another T: %v", rep)
	}
	for id, want := range map[uint64]int64{1: 3, 2: 1, 3: 1} {
		p, err := s.Get(id)
		if err != nil || p.A != want || (id != 1 && p.Coins != startCoins) {
			t.Fatalf("player %d = %+v, %v; want its value before the transfer", id, p, err)
		}
	}
}

const (
	clusterLen = 6
	stepEnv    = "HOTHOST_STATE_STEP"
)

// clusterIDs returns n ids with one home in the index of a store of
// capacity players. Created in order they make one cluster, each entry
// one past the previous, so deleting the first moves all the others.
func clusterIDs(capacity, n int) []uint64 {
	x := index{tab: make([]uint32, indexLen(capacity))}
	const base = 1 << 50
	var ids []uint64
	for id := uint64(base); len(ids) < n; id++ {
		if x.home(id) == x.home(base) {
			ids = append(ids, id)
		}
	}
	return ids
}

// waitScrub waits for the store's first scrub pass (a hang is named by go
// test's -timeout).
func waitScrub(t testing.TB, s *Store[Player]) ScrubStatus {
	t.Helper()
	st, err := s.WaitScrub(context.Background())
	if err != nil {
		t.Fatalf("WaitScrub: %v", err)
	}
	return st
}

func childMigrateStop(dir string) error {
	testHookMigrated = func(n int) {
		if n == 50 {
			fmt.Println("migrating")
			parkUntilKilled() // the parent kills us here, half way through
		}
	}
	_, _, err := Open[PlayerV2](Options{Name: "players", ShmDir: dir, Logger: quietLogger()})
	return err
}
