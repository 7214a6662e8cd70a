package shmpool_test

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/hothost/hothost/shmpool"
)

const childEnv = "SHMPOOL_TEST_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		writerChild(dir)
		return
	}
	os.Exit(m.Run())
}

// writerChild allocates and writes players until it is killed, reporting
// each write on stdout only after the write is complete.
func writerChild(dir string) {
	p, err := shmpool.Open[player]("pool", shmpool.Options{Dir: dir, Capacity: 1 << 16})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	for i := uint64(1); ; i++ {
		h, v, err := p.Alloc()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		v.ID, v.Coin, v.Inventory[7].Count = i, int64(i)*3, int32(i)
		fmt.Fprintf(out, "%d %d\n", uint64(h), i)
		out.Flush()
	}
}

// A writer killed with SIGKILL at a random instant: every write it reported
// is found by the next owner, who also learns the last owner crashed.
func TestKilledWriterLosesNothingReported(t *testing.T) {
	dir := shmDir(t)
	total := 0
	for round := range 5 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+dir)
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		want := 200 + rand.IntN(2000)
		reported := map[shmpool.Handle]uint64{}
		sc := bufio.NewScanner(stdout)
		for len(reported) < want && sc.Scan() {
			var h, i uint64
			if _, err := fmt.Sscan(sc.Text(), &h, &i); err != nil {
				t.Fatalf("child said %q: %v", sc.Text(), err)
			}
			reported[shmpool.Handle(h)] = i
		}
		if len(reported) < want {
			t.Fatalf("round %d: child stopped after %d writes: %v", round, len(reported), sc.Err())
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()

		p, err := shmpool.Open[player]("pool", shmpool.Options{Dir: dir})
		if err != nil {
			t.Fatalf("round %d: attach after kill -9: %v", round, err)
		}
		if info := p.Info(); info.How != shmpool.AttachedAfterCrash || info.PrevOwnerPID != cmd.Process.Pid {
			t.Fatalf("round %d: info %+v, want a crash of pid %d", round, info, cmd.Process.Pid)
		}
		for h, i := range reported {
			v, err := p.Get(h)
			if err != nil {
				t.Fatalf("round %d: reported write %v lost: %v", round, h, err)
			}
			if v.ID != i || v.Coin != int64(i)*3 || v.Inventory[7].Count != int32(i) {
				t.Fatalf("round %d: slot %v = %+v, want write %d", round, h, v, i)
			}
		}
		total += len(reported)
		// Empty the pool for the next round, as a new owner would.
		for h := range p.All() {
			if err := p.Free(h); err != nil {
				t.Fatal(err)
			}
		}
		p.Close()
	}
	t.Logf("%d reported writes checked across 5 kills", total)
}
