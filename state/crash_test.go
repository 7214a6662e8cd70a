package state

import (
	"bufio"
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

func childOptions(dir string) Options {
	return Options{Name: "players", ShmDir: dir, Capacity: 4096, Lanes: 16, Logger: quietLogger()}
}

// stormPlayers are updated under the invariant; churnPlayers are deleted
// and created again all the time, to crash in the middle of those too.
const stormPlayers, churnBase, churnPlayers = 64, 1 << 40, 32

func runChild(mode, dir string) error {
	switch mode {
	case "storm":
		return childStorm(dir)
	case "torn-update", "torn-create", "torn-alloc":
		return childTorn(mode, dir)
	case "migrate-stop":
		return childMigrateStop(dir)
	}
	return fmt.Errorf("unknown child mode %q", mode)
}

// childStorm updates players in a tight loop and reports each update that
// Update acknowledged as "id A\n". Reports are buffered (a 4 KiB write is
// atomic on a pipe), so the parent's kill lands anywhere in the loop, not
// just in a write system call.
func childStorm(dir string) error {
	s, _, err := Open[Player](childOptions(dir))
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
	kills := 50
	if *chaos || os.Getenv("HOTHOST_CHAOS") == "1" {
		kills = 1000
	}
	if testing.Short() {
		kills = 10
	}
	dir := shmDir(t)
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 1))
	acked := map[uint64]int64{}
	total, repaired := 0, 0
	for k := range kills {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=storm", dirEnv+"="+dir)
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
		target := 1 + rng.IntN(3000)
		for n := 0; n < target && read(); n++ {
		}
		cmd.Process.Signal(syscall.SIGKILL)
		for read() { // what the child flushed before it died was acknowledged too
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
		for id := uint64(1); id <= stormPlayers; id++ {
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
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if total == 0 {
		t.Fatal("no update was ever acknowledged")
	}
	t.Logf("%d kills, %d acknowledged updates checked, %d journal entries rolled back", kills, total, repaired)
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
		slot, _ := s.idx.find(1)
		_, rec, _ := s.pool.Lookup(int(slot))
		*ln.undo = *rec
		atomic.StoreUint64(ln.active, journalUpdate<<32|uint64(slot))
		atomic.StoreUint32(&rec.Seq, rec.Seq+1)
		rec.Val.A, rec.Val.Coins = 1000, 1000 // B, Check, Inv not yet
	case "torn-create":
		// Ensure(2) up to the index insert, not the journal retirement.
		ln := s.lane(2)
		h, rec, _ := s.pool.Alloc()
		atomic.StoreUint64(ln.active, journalCreate<<32|uint64(h.Index()))
		rec.ID = 2
		rec.Sum = recordSum(recordBytes(rec))
		s.idx.insert(2, uint32(h.Index()))
	case "torn-alloc":
		// Ensure(2) killed right after shmpool handed out a zeroed slot.
		s.pool.Alloc()
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	parkUntilKilled()
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

func runTornChild(t *testing.T, mode string) (*Store[Player], *OpenReport) {
	t.Helper()
	dir := shmDir(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, dirEnv+"="+dir)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child %s ended with %v, want killed by SIGKILL", mode, err)
	}
	s, rep := mustOpen[Player](t, childOptions(dir))
	t.Cleanup(func() { s.Close() })
	if rep.How != Recovered || rep.Recovery == nil || rep.Recovery.Lost != 0 || rep.Recovery.Repaired != 1 {
		t.Fatalf("open after %s: %v; want recovered, 1 repaired, 0 lost", mode, rep)
	}
	p, err := s.Get(1)
	if err != nil || p.A != 3 || p.consistent(1) != "" {
		t.Fatalf("after %s player 1 = %+v, %v; want the third commit", mode, p, err)
	}
	return s, rep
}

func TestRecoveryRollsBackTornUpdate(t *testing.T) {
	s, _ := runTornChild(t, "torn-update")
	if p, _ := s.Get(1); p.Coins != 0 {
		t.Fatalf("Coins = %d: the torn write survived", p.Coins)
	}
}

func TestRecoveryRemovesHalfCreatedPlayer(t *testing.T) {
	for _, mode := range []string{"torn-create", "torn-alloc"} {
		t.Run(mode, func(t *testing.T) {
			s, _ := runTornChild(t, mode)
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
