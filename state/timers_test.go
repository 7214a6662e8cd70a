package state

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The timer tests' game: "construct" spends refundCost coins now and
// schedules a refund of them; firing the refund gives them back. So for
// every player, Coins + refundCost * (pending refunds) == startCoins,
// whatever was committed, and a refund fired twice (or a build whose
// timer got lost) shows.
const refundCost = 10

// construct is RunTx's callback for player id: spend, and schedule the
// refund after d.
func construct(id uint64, d time.Duration) func(tx *Tx[Player]) error {
	return func(tx *Tx[Player]) error {
		p := tx.Values()[0]
		if p.Coins < refundCost {
			return errPoor
		}
		p.Coins -= refundCost
		p.step(id)
		_, err := tx.After(id, d, "refund", strconv.Itoa(refundCost))
		return err
	}
}

// refund is RunTimer's callback for t.
func refund(t Timer) func(tx *Tx[Player]) error {
	return func(tx *Tx[Player]) error {
		n, err := strconv.Atoi(t.Args)
		if err != nil || t.Msg != "refund" {
			return fmt.Errorf("timer %q %q", t.Msg, t.Args)
		}
		p := tx.Values()[0]
		p.Coins += int64(n)
		p.step(t.Player)
		return nil
	}
}

// checkRefunds checks the refund invariant of players 1..n.
func checkRefunds(t testing.TB, s *Store[Player], n int) {
	t.Helper()
	for id := uint64(1); id <= uint64(n); id++ {
		p, err := s.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Coins + refundCost*int64(len(s.Timers(id))); got != startCoins {
			t.Fatalf("player %d: %d coins and %d refunds pending: %d, want %d", id, p.Coins, len(s.Timers(id)), got, startCoins)
		}
	}
}

// fireDue fires every timer due at now with refund, returning how many
// fired.
func fireDue(t testing.TB, s *Store[Player], now time.Time) int {
	t.Helper()
	n := 0
	for _, tm := range s.DueTimers(now, 1<<20) {
		if err := s.RunTimer(tm, nil, refund(tm)); err != nil {
			t.Fatalf("fire %+v: %v", tm, err)
		}
		n++
	}
	return n
}

func TestTimerFiresOnce(t *testing.T) {
	s, _ := mustOpen[Player](t, testOptions(t, 8))
	defer s.Close()
	seedCoins(t, s, 1)
	if err := s.RunTx([]uint64{1}, nil, construct(1, 0)); err != nil {
		t.Fatal(err)
	}
	checkRefunds(t, s, 1)
	due := s.DueTimers(time.Now(), 10)
	if len(due) != 1 || due[0].Player != 1 || due[0].Msg != "refund" || due[0].Args != "10" {
		t.Fatalf("DueTimers = %+v", due)
	}
	if err := s.RunTimer(due[0], nil, refund(due[0])); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Get(1); p.Coins != startCoins || len(s.Timers(1)) != 0 || p.A != 2 {
		t.Fatalf("after firing: %d coins, A %d, timers %v", p.Coins, p.A, s.Timers(1))
	}
	called := false
	err := s.RunTimer(due[0], nil, func(*Tx[Player]) error { called = true; return nil })
	if !errors.Is(err, ErrTimerGone) || called {
		t.Fatalf("second firing: %v (fn called: %v), want ErrTimerGone", err, called)
	}
	checkRefunds(t, s, 1)
}

// A handler that refuses still consumes its timer; one that panics, or
// is fenced, leaves it pending.
func TestTimerFiringOutcomes(t *testing.T) {
	s, _ := mustOpen[Player](t, testOptions(t, 8))
	defer s.Close()
	seedCoins(t, s, 1)
	for range 3 {
		if err := s.RunTx([]uint64{1}, nil, construct(1, 0)); err != nil {
			t.Fatal(err)
		}
	}
	due := s.DueTimers(time.Now(), 10)
	if len(due) != 3 {
		t.Fatalf("%d due, want 3", len(due))
	}
	refused := errors.New("refused")
	if err := s.RunTimer(due[0], nil, func(tx *Tx[Player]) error { tx.Values()[0].Coins = 0; return refused }); !errors.Is(err, refused) {
		t.Fatalf("refusing handler: %v", err)
	}
	func() {
		defer func() { recover() }()
		s.RunTimer(due[1], nil, func(tx *Tx[Player]) error { panic("boom") })
	}()
	var g Guard
	err := s.RunTimer(due[2], &g, func(tx *Tx[Player]) error {
		fence(s, &g)
		tx.Values()[0].Coins += 1000
		return nil
	})
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("fenced firing: %v", err)
	}
	left := s.Timers(1)
	if len(left) != 2 || left[0].ID != due[1].ID || left[1].ID != due[2].ID {
		t.Fatalf("pending after refuse, panic, fence: %+v; want the last two of %+v", left, due)
	}
	if p, _ := s.Get(1); p.Coins != startCoins-3*refundCost {
		t.Fatalf("%d coins: a handler that did not succeed changed the player", p.Coins)
	}
}

// Timers, their IDs and their order survive a clean restart, and one
// fired before it stays fired.
func TestTimersSurviveCleanRestart(t *testing.T) {
	opts := testOptions(t, 16)
	s, _ := mustOpen[Player](t, opts)
	seedCoins(t, s, 3)
	now := time.Now()
	for i, id := range []uint64{2, 1, 3, 1} {
		err := s.RunTx([]uint64{id}, nil, func(tx *Tx[Player]) error {
			_, err := tx.At(id, now.Add(time.Duration(i-2)*time.Hour), fmt.Sprint("m", i), strings.Repeat("a", i))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	before := s.DueTimers(now.Add(10*time.Hour), 10)
	if len(before) != 4 || before[0].Msg != "m0" || before[3].Msg != "m3" || before[2].Args != "aa" {
		t.Fatalf("DueTimers = %+v", before)
	}
	if err := s.RunTimer(before[0], nil, func(*Tx[Player]) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, rep := mustOpen[Player](t, opts)
	defer s.Close()
	if rep.Timers != 3 || rep.TimersDropped != 0 {
		t.Fatalf("open: %v", rep)
	}
	after := s.DueTimers(now.Add(10*time.Hour), 10)
	if !slices.EqualFunc(after, before[1:], func(a, b Timer) bool { return a.ID == b.ID && a.Due.Equal(b.Due) && a.Msg == b.Msg && a.Args == b.Args }) {
		t.Fatalf("after a restart: %+v, want %+v", after, before[1:])
	}
	if due := s.DueTimers(now, 10); len(due) != 2 || due[0].ID != before[1].ID {
		t.Fatalf("due now: %+v", due)
	}
	if next, ok := s.NextDue(); !ok || !next.Equal(before[1].Due) {
		t.Fatalf("NextDue = %v %v, want %v", next, ok, before[1].Due)
	}
	if got := s.Timers(1); len(got) != 2 || got[0].Msg != "m1" || got[1].Msg != "m3" {
		t.Fatalf("Timers(1) = %+v", got)
	}
}

// DueTimers returns exactly the due timers, earliest first, up to max,
// whatever order they were scheduled and fired in.
func TestDueTimersOrder(t *testing.T) {
	const players = 8
	opts := testOptions(t, 16)
	opts.Timers = 512
	s, _ := mustOpen[Player](t, opts)
	defer s.Close()
	seedCoins(t, s, players)
	rng := rand.New(rand.NewPCG(5, 5))
	base := time.Unix(1_700_000_000, 0)
	var all []Timer
	for range 300 {
		id := 1 + rng.Uint64N(players)
		due := base.Add(time.Duration(rng.IntN(100)) * time.Second) // many equal due times
		if err := s.RunTx([]uint64{id}, nil, func(tx *Tx[Player]) error { _, err := tx.At(id, due, "m", ""); return err }); err != nil {
			t.Fatal(err)
		}
		if rng.IntN(3) == 0 { // fire one of the pending at random
			p := s.Timers(1 + rng.Uint64N(players))
			if len(p) > 0 {
				if err := s.RunTimer(p[0], nil, func(*Tx[Player]) error { return nil }); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for id := uint64(1); id <= players; id++ {
		all = append(all, s.Timers(id)...)
	}
	slices.SortFunc(all, func(a, b Timer) int {
		if c := a.Due.Compare(b.Due); c != 0 {
			return c
		}
		return int(a.ID.slot()) - int(b.ID.slot())
	})
	for _, at := range []int{0, 10, 50, 99} {
		now := base.Add(time.Duration(at) * time.Second)
		var want []TimerID
		for _, tm := range all {
			if !tm.Due.After(now) {
				want = append(want, tm.ID)
			}
		}
		for _, most := range []int{1, 7, len(all) + 1} {
			var got []TimerID
			for _, tm := range s.DueTimers(now, most) {
				got = append(got, tm.ID)
			}
			if w := want[:min(most, len(want))]; !slices.Equal(got, w) {
				t.Fatalf("DueTimers(+%ds, %d) = %v, want %v", at, most, got, w)
			}
		}
	}
}

// A player's timers go with it, and a timer of a player deleted by a
// Delete cut short (before its timers went) is dropped at the next Open.
func TestTimersOfDeletedPlayer(t *testing.T) {
	opts := testOptions(t, 16)
	s, _ := mustOpen[Player](t, opts)
	seedCoins(t, s, 3)
	for _, id := range []uint64{1, 2, 2, 3} {
		if err := s.RunTx([]uint64{id}, nil, construct(id, time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	gone := s.Timers(2)
	if err := s.Delete(2); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.PendingTimers(); n != 2 || len(s.Timers(2)) != 0 {
		t.Fatalf("after Delete: %d pending, player 2's: %v", n, s.Timers(2))
	}
	if err := s.RunTimer(gone[0], nil, func(*Tx[Player]) error { return nil }); !errors.Is(err, ErrTimerGone) {
		t.Fatalf("firing a deleted player's timer: %v", err)
	}
	s.Ensure(2)
	if len(s.Timers(2)) != 0 {
		t.Fatal("a new player 2 has the old one's timers")
	}
	// Player 3 deleted, and its timer's word put back as a Delete killed
	// between the player and its timers leaves it.
	slot := s.Timers(3)[0].ID.slot()
	w := s.timers.words[slot]
	if err := s.Delete(3); err != nil {
		t.Fatal(err)
	}
	s.timers.words[slot] = w
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, rep := mustOpen[Player](t, opts)
	defer s.Close()
	if rep.Timers != 1 || rep.TimersDropped != 1 || len(s.Timers(1)) != 1 {
		t.Fatalf("open after a cut-short delete: %v", rep)
	}
}

func TestTimerLimits(t *testing.T) {
	opts := testOptions(t, 8)
	opts.Timers = 100
	s, _ := mustOpen[Player](t, opts)
	defer s.Close()
	seedCoins(t, s, 3)
	try := func(fn func(tx *Tx[Player]) error) error { return s.RunTx([]uint64{1, 2}, nil, fn) }
	at := func(tx *Tx[Player], player uint64, msg, args string) error {
		_, err := tx.After(player, time.Hour, msg, args)
		return err
	}
	for _, c := range []struct {
		player    uint64
		msg, args string
		want      error
	}{
		{1, "", "", ErrBadTimer},
		{1, strings.Repeat("m", MaxTimerMsg+1), "", ErrBadTimer},
		{1, "m", strings.Repeat("a", MaxTimerArgs+1), ErrBadTimer},
		{3, "m", "", ErrBadPlayers},
	} {
		if err := try(func(tx *Tx[Player]) error { return at(tx, c.player, c.msg, c.args) }); !errors.Is(err, c.want) {
			t.Fatalf("After(%d, %d-byte msg, %d-byte args): %v, want %v", c.player, len(c.msg), len(c.args), err, c.want)
		}
	}
	// The longest that fit do.
	if err := try(func(tx *Tx[Player]) error {
		return at(tx, 2, strings.Repeat("m", MaxTimerMsg), strings.Repeat("a", MaxTimerArgs))
	}); err != nil {
		t.Fatal(err)
	}
	// At most MaxTxTimers changes a transaction; the failed one schedules
	// nothing.
	err := try(func(tx *Tx[Player]) error {
		for range MaxTxTimers + 1 {
			if err := at(tx, 1, "m", ""); err != nil {
				return err
			}
		}
		return nil
	})
	if n, _ := s.PendingTimers(); !errors.Is(err, ErrTimersFull) || n != 1 {
		t.Fatalf("%d timers in one transaction: %v; %d pending, want 1", MaxTxTimers+1, err, n)
	}
	// At most MaxPlayerTimers a player.
	for k := 0; ; k++ {
		err := try(func(tx *Tx[Player]) error { return at(tx, 1, "m", "") })
		if errors.Is(err, ErrTimersFull) && k == MaxPlayerTimers && strings.Contains(err.Error(), "player 1") {
			break
		}
		if err != nil || k > MaxPlayerTimers {
			t.Fatalf("timer %d of player 1: %v", k, err)
		}
	}
	// And the segment's 100 in all (65 used: player 2 takes 35 more).
	for k := 0; ; k++ {
		err := try(func(tx *Tx[Player]) error { return at(tx, 2, "m", "") })
		if errors.Is(err, ErrTimersFull) && k == 35 && strings.Contains(err.Error(), "Options.Timers") {
			break
		}
		if err != nil || k > 35 {
			t.Fatalf("timer %d of player 2: %v", k, err)
		}
	}
}

func TestTxCancel(t *testing.T) {
	s, _ := mustOpen[Player](t, testOptions(t, 8))
	defer s.Close()
	seedCoins(t, s, 2)
	var ids []TimerID
	err := s.RunTx([]uint64{1, 2}, nil, func(tx *Tx[Player]) error {
		for _, p := range []uint64{1, 1, 2} {
			id, err := tx.After(p, time.Hour, "m", "")
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return tx.Cancel(1, ids[1]) // one of its own: never scheduled
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := s.PendingTimers(); n != 2 {
		t.Fatalf("%d pending, want 2", n)
	}
	err = s.RunTx([]uint64{1, 2}, nil, func(tx *Tx[Player]) error {
		for _, c := range []struct {
			player uint64
			id     TimerID
		}{{2, ids[0]}, {1, ids[1]}, {1, ids[0] + 1<<24}} { // another's, cancelled, a stale word
			if err := tx.Cancel(c.player, c.id); !errors.Is(err, ErrTimerGone) {
				return fmt.Errorf("Cancel(%d, %d): %v, want ErrTimerGone", c.player, c.id, err)
			}
		}
		if err := tx.Cancel(1, ids[0]); err != nil {
			return err
		}
		if err := tx.Cancel(1, ids[0]); !errors.Is(err, ErrTimerGone) {
			return fmt.Errorf("second Cancel: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Timers(1); len(got) != 0 || len(s.Timers(2)) != 1 {
		t.Fatalf("after Cancel: %v, %v", got, s.Timers(2))
	}
}

// A transaction that fails schedules nothing, and gives its slots back.
func TestFailedTxSchedulesNothing(t *testing.T) {
	opts := testOptions(t, 8)
	opts.Timers = 2
	s, _ := mustOpen[Player](t, opts)
	defer s.Close()
	seedCoins(t, s, 1)
	for range 10 {
		err := s.RunTx([]uint64{1}, nil, func(tx *Tx[Player]) error {
			tx.After(1, 0, "a", "")
			tx.After(1, 0, "b", "")
			return errPoor
		})
		if !errors.Is(err, errPoor) {
			t.Fatal(err)
		}
	}
	if n, c := s.PendingTimers(); n != 0 || c != 2 {
		t.Fatalf("%d of %d pending", n, c)
	}
	for range 2 {
		if err := s.RunTx([]uint64{1}, nil, construct(1, 0)); err != nil {
			t.Fatalf("the slots were not given back: %v", err)
		}
	}
}

// Migrations (a changed T, more timer slots) carry the timers over with
// their IDs.
func TestMigrationKeepsTimers(t *testing.T) {
	opts := testOptions(t, 16)
	opts.Timers = 8
	s, _ := mustOpen[Player](t, opts)
	seedCoins(t, s, 2)
	for _, id := range []uint64{1, 2, 1} {
		if err := s.RunTx([]uint64{id}, nil, construct(id, time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	want := s.DueTimers(time.Now().Add(time.Hour), 10)
	s.Close()
	opts.Timers = 32
	s, rep := mustOpen[Player](t, opts)
	if rep.How != Migrated || rep.TimerSlots != 32 || rep.Timers != 3 {
		t.Fatalf("open with more timers: %v", rep)
	}
	s.Close()
	opts.Timers = 0
	w, rep := mustOpen[PlayerWide](t, opts)
	defer w.Close()
	if rep.How != Migrated || rep.TimerSlots != 32 || rep.Timers != 3 || rep.TimersDropped != 0 {
		t.Fatalf("open by another T: %v", rep)
	}
	if got := w.DueTimers(time.Now().Add(time.Hour), 10); !slices.Equal(got, want) {
		t.Fatalf("timers after migrations: %+v, want %+v", got, want)
	}
}
