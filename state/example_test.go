package state_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hothost/hothost/state"
)

// Account is a game's state: fixed-size and pointer-free.
type Account struct {
	Coins int64
	Level int32
	Name  [16]byte
}

func exampleDir() string {
	d, _ := os.MkdirTemp("/dev/shm", "hothost-example-")
	return d
}

func ExampleOpen() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	opts := state.Options{Name: "accounts", ShmDir: dir, Capacity: 1000,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}

	s, rep, err := state.Open[Account](opts)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(rep.How, rep.Players)
	s.Ensure(7)
	s.Close()

	// The next host (after a restart, or kill -9) attaches the same memory.
	s, rep, _ = state.Open[Account](opts)
	defer s.Close()
	fmt.Println(rep.How, rep.Players)
	// Output:
	// created 0
	// attached 1
}

func ExampleStore_Update() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	s, _, _ := state.Open[Account](state.Options{Name: "accounts", ShmDir: dir, Capacity: 10,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer s.Close()

	s.Ensure(42) // first login
	s.Update(42, func(a *Account) error { a.Coins += 100; return nil })
	err := s.Update(42, func(a *Account) error {
		a.Coins -= 500
		if a.Coins < 0 {
			return fmt.Errorf("not enough coins")
		}
		return nil
	})
	a, _ := s.Get(42)
	fmt.Println(a.Coins, err)
	// Output: 100 not enough coins
}

func ExampleStore_RunMulti() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	s := openAccounts(dir)
	defer s.Close()

	// Player 1 gives 30 coins to player 2: both change, or neither does,
	// even if the process is killed half way through the commit.
	give := func(coins int64) func(vs []*Account) error {
		return func(vs []*Account) error {
			if vs[0].Coins < coins {
				return fmt.Errorf("player 1 has only %d coins", vs[0].Coins)
			}
			vs[0].Coins -= coins
			vs[1].Coins += coins
			return nil
		}
	}
	var g state.Guard // lets a watchdog Fence the transaction; nil is allowed
	fmt.Println(s.RunMulti([]uint64{1, 2}, &g, give(30)))
	fmt.Println(s.RunMulti([]uint64{1, 2}, &g, give(500)))
	a, _ := s.Get(1)
	b, _ := s.Get(2)
	fmt.Println(a.Coins, b.Coins)
	// Output:
	// <nil>
	// player 1 has only 70 coins
	// 70 130
}

// openAccounts is the examples' store, with players 1 and 2 holding 100
// coins each.
func openAccounts(dir string) *state.Store[Account] {
	s, _, _ := state.Open[Account](state.Options{Name: "accounts", ShmDir: dir, Capacity: 10,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	for _, id := range []uint64{1, 2} {
		s.Ensure(id)
		s.Update(id, func(a *Account) error { a.Coins = 100; return nil })
	}
	return s
}

func ExampleStore_RunTx() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	s := openAccounts(dir)
	defer s.Close()

	// "build house": pay now, and the house is built in 30 s. The coins
	// and the timer commit together (or, on kill -9, neither does).
	err := s.RunTx([]uint64{1}, nil, func(tx *state.Tx[Account]) error {
		tx.Values()[0].Coins -= 40
		_, err := tx.After(1, 30*time.Second, "built", "house")
		return err
	})
	fmt.Println(err)
	for _, t := range s.Timers(1) {
		fmt.Println(t.Player, t.Msg, t.Args, "due later:", t.Due.After(time.Now()))
	}
	pending, slots := s.PendingTimers()
	fmt.Println(pending, "of", slots)
	// Output:
	// <nil>
	// 1 built house due later: true
	// 1 of 40
}

func ExampleStore_RunTimer() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	s := openAccounts(dir)
	defer s.Close()
	s.RunTx([]uint64{2}, nil, func(tx *state.Tx[Account]) error {
		_, err := tx.After(2, 0, "reward", "25")
		return err
	})

	// A host's timer loop: fire what is due (on whatever code is active),
	// then sleep until NextDue.
	for _, t := range s.DueTimers(time.Now(), 100) {
		err := s.RunTimer(t, nil, func(tx *state.Tx[Account]) error {
			n, err := strconv.Atoi(t.Args)
			tx.Values()[0].Coins += int64(n)
			return err
		})
		fmt.Println(t.Msg, err)
		// The timer fired with its effect: it never fires again.
		again := s.RunTimer(t, nil, func(*state.Tx[Account]) error { return nil })
		fmt.Println(errors.Is(again, state.ErrTimerGone))
	}
	a, _ := s.Get(2)
	_, more := s.NextDue()
	fmt.Println(a.Coins, more)
	// Output:
	// reward <nil>
	// true
	// 125 false
}

func ExampleTx_Cancel() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	s := openAccounts(dir)
	defer s.Close()
	var id state.TimerID
	s.RunTx([]uint64{1}, nil, func(tx *state.Tx[Account]) (err error) {
		id, err = tx.After(1, time.Hour, "built", "house")
		return err
	})
	// "cancel build": refund and drop the timer, in one commit.
	err := s.RunTx([]uint64{1}, nil, func(tx *state.Tx[Account]) error {
		tx.Values()[0].Coins += 40
		return tx.Cancel(1, id)
	})
	fmt.Println(err, len(s.Timers(1)))
	// Output: <nil> 0
}

func ExampleStore_Snapshot() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	opts := state.Options{Name: "accounts", ShmDir: dir, Capacity: 10, SnapshotDir: filepath.Join(dir, "snap"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s, _, _ := state.Open[Account](opts)
	s.Ensure(1)
	s.Update(1, func(a *Account) error { a.Level = 3; return nil })
	info, _ := s.Snapshot()
	s.Close()
	fmt.Println(info.Players)

	// After a reboot /dev/shm is empty: Open restores the newest snapshot.
	os.Remove(filepath.Join(dir, "accounts"))
	s, rep, _ := state.Open[Account](opts)
	defer s.Close()
	a, _ := s.Get(1)
	fmt.Println(rep.How, a.Level)
	// Output:
	// 1
	// restored 3
}

// A host that watches its handlers runs each request with Run and a Guard;
// a watchdog that gives up on a callback calls Fence, and the lane serves
// the next player at once while the stuck callback can never commit.
func ExampleStore_Run() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	s, _, err := state.Open[Account](state.Options{Name: "accounts", ShmDir: dir, Capacity: 10,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	s.Ensure(7)

	var g state.Guard
	stuck, release, done := make(chan struct{}), make(chan struct{}), make(chan error)
	go func() {
		done <- s.Run(7, &g, func(a *Account) error {
			a.Coins = 1_000_000
			close(stuck)
			<-release // a handler that does not return in time
			return nil
		})
	}()
	<-stuck
	tok, _ := g.Running()
	fmt.Println("fenced:", s.Fence(&g, tok, nil))
	err = s.Run(7, nil, func(a *Account) error { a.Coins += 5; return nil })
	fmt.Println("next request:", err)
	close(release)
	fmt.Println("stuck request:", <-done)
	a, _ := s.Get(7)
	fmt.Println("coins:", a.Coins)
	// Output:
	// fenced: true
	// next request: <nil>
	// stuck request: state: transaction fenced by a watchdog
	// coins: 5
}

// Scrub reports the background check of every record that Open starts
// (after kill -9 it is what checks the records, since recovery trusts the
// journal and the index): for a status page and metrics.
func ExampleStore_Scrub() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	s, _, _ := state.Open[Account](state.Options{Name: "accounts", ShmDir: dir, Capacity: 10,
		ScrubRate: 1000, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer s.Close()

	st := s.Scrub()
	fmt.Println(st.Rate, st.TotalFailed)
	// Output: 1000 0
}

// WaitScrub waits for the pass under way: after it, every record present
// at Open was checked, and st.Problems lists what was found and done.
func ExampleStore_WaitScrub() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	opts := state.Options{Name: "accounts", ShmDir: dir, Capacity: 10, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s, _, _ := state.Open[Account](opts)
	s.Ensure(1)
	s.Ensure(2)
	s.Close()

	s, _, _ = state.Open[Account](opts)
	defer s.Close()
	st, err := s.WaitScrub(context.Background())
	fmt.Println(st.Checked, st.Failed, st.Progress(), len(st.Problems), err)
	fmt.Println(st)
	// Output:
	// 2 0 1 0 <nil>
	// scrub done (1 passes, 100000 records/s): checked 2, failed 0
}
