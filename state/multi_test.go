package state

import (
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// startCoins is what every player of the transfer tests starts with.
const startCoins = 1000

// seedCoins creates players 1..n with startCoins each.
func seedCoins(t testing.TB, s *Store[Player], n int) {
	t.Helper()
	for id := uint64(1); id <= uint64(n); id++ {
		if _, err := s.Ensure(id); err != nil {
			t.Fatal(err)
		}
		if err := s.Update(id, func(p *Player) error { p.Coins = startCoins; return nil }); err != nil {
			t.Fatal(err)
		}
	}
}

var errPoor = errors.New("not enough coins")

// transfer is the transaction the transfer tests run: vs[0] pays amount
// to each of the others, if it can, and every player takes a step (so
// that a torn record, or a lost update, shows).
func transfer(ids []uint64, amount int64) func(vs []*Player) error {
	return func(vs []*Player) error {
		if vs[0].Coins < amount*int64(len(vs)-1) {
			return errPoor
		}
		for i, p := range vs {
			if i == 0 {
				p.Coins -= amount * int64(len(vs)-1)
			} else {
				p.Coins += amount
			}
			p.step(ids[i])
		}
		return nil
	}
}

// pickPlayers returns 2..max distinct players of 1..n, in random order.
func pickPlayers(rng *rand.Rand, n, most int) []uint64 {
	perm := rng.Perm(n)
	ids := make([]uint64, 2+rng.IntN(most-1))
	for i := range ids {
		ids[i] = uint64(perm[i] + 1)
	}
	return ids
}

// coinsAndSteps sums every player's Coins and A, checking each record.
func coinsAndSteps(t testing.TB, s *Store[Player]) (coins, steps int64) {
	t.Helper()
	s.Each(func(id uint64, p *Player) bool {
		if msg := p.consistent(id); msg != "" {
			t.Fatalf("player %d torn: %s", id, msg)
		}
		coins += p.Coins
		steps += p.A
		return true
	})
	return coins, steps
}

// Many goroutines give coins among a few players that share few lanes,
// in every order, beside single-player transactions: no deadlock (a hang
// is named by go test's -timeout), no coin created or destroyed, and no
// update lost (every committed transaction's steps are there).
func TestRunMultiConcurrentGifts(t *testing.T) {
	const players, workers, each = 7, 16, 400
	opts := testOptions(t, 64)
	opts.Lanes = 4 // several players per lane, and transactions across all of them
	s, _ := mustOpen[Player](t, opts)
	defer s.Close()
	seedCoins(t, s, players)
	var steps, refused atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			var g Guard
			for range each {
				if rng.IntN(5) == 0 { // a player's own request, on the same lanes
					id := 1 + rng.Uint64N(players)
					if err := s.Run(id, &g, func(p *Player) error { p.step(id); return nil }); err != nil {
						t.Error(err)
						return
					}
					steps.Add(1)
					continue
				}
				ids := pickPlayers(rng, players, 4)
				err := s.RunMulti(ids, &g, transfer(ids, 1+rng.Int64N(300)))
				switch {
				case err == nil:
					steps.Add(int64(len(ids)))
				case errors.Is(err, errPoor):
					refused.Add(1)
				default:
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	coins, got := coinsAndSteps(t, s)
	if coins != players*startCoins {
		t.Fatalf("total coins %d, want %d", coins, players*startCoins)
	}
	if got != steps.Load() {
		t.Fatalf("players took %d steps, committed transactions %d", got, steps.Load())
	}
	t.Logf("%d steps committed, %d transfers refused", got, refused.Load())
}

func TestRunMultiRefusesBadPlayers(t *testing.T) {
	s, _ := mustOpen[Player](t, testOptions(t, 16))
	defer s.Close()
	seedCoins(t, s, 10)
	nine := []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9}
	for _, ids := range [][]uint64{nil, nine, {1, 2, 1}} {
		called := false
		err := s.RunMulti(ids, nil, func([]*Player) error { called = true; return nil })
		if !errors.Is(err, ErrBadPlayers) || called {
			t.Fatalf("RunMulti(%v): %v (fn called: %v), want ErrBadPlayers", ids, err, called)
		}
	}
	// A missing player fails the whole transaction before fn runs, and
	// leaves the lanes free.
	ids := []uint64{3, 99, 4}
	called := false
	err := s.RunMulti(ids, nil, func([]*Player) error { called = true; return nil })
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "player 99") || called {
		t.Fatalf("RunMulti(%v): %v (fn called: %v), want ErrNotFound naming 99", ids, err, called)
	}
	if err := s.RunMulti([]uint64{3, 4}, nil, transfer([]uint64{3, 4}, 10)); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.Get(3); a.Coins != startCoins-10 {
		t.Fatalf("player 3 has %d coins", a.Coins)
	}
}

// lanePlayers returns players a and b on different lanes, and c on a's.
func lanePlayers(t *testing.T, s *Store[Player]) (a, b, c uint64) {
	t.Helper()
	a, c = sameLane(t, s)
	for b = 2; s.LaneOf(b) == s.LaneOf(a); b++ {
	}
	return a, b, c
}

// A watchdog fencing a stuck RunMulti frees every lane it holds at once,
// and the transaction commits nothing when its callback returns.
func TestFenceFreesEveryLaneOfRunMulti(t *testing.T) {
	s, _ := mustOpen[Player](t, testOptions(t, 64))
	defer s.Close()
	a, b, c := lanePlayers(t, s)
	for _, id := range []uint64{a, b, c} {
		if _, err := s.Ensure(id); err != nil {
			t.Fatal(err)
		}
	}
	var g Guard
	entered, release, done := make(chan struct{}), make(chan struct{}), make(chan error)
	go func() {
		done <- s.RunMulti([]uint64{b, a}, &g, func(vs []*Player) error {
			vs[0].step(b)
			close(entered)
			<-release // a handler that does not return
			vs[1].step(a)
			return nil
		})
	}()
	<-entered
	if g.Lane() != s.LaneOf(b) {
		t.Fatalf("Guard.Lane = %d, want the first player's lane %d", g.Lane(), s.LaneOf(b))
	}
	if !fence(s, &g) {
		t.Fatal("Fence of a running RunMulti reported false")
	}
	// Both lanes serve again while the callback is stuck: b's, and a's
	// (through c, which shares it, and through a itself).
	for _, id := range []uint64{b, c, a} {
		if err := s.Update(id, func(p *Player) error { p.step(id); return nil }); err != nil {
			t.Fatalf("update of %d beside the fenced transaction: %v", id, err)
		}
	}
	close(release)
	if err := <-done; !errors.Is(err, ErrFenced) {
		t.Fatalf("fenced RunMulti returned %v, want ErrFenced", err)
	}
	for _, id := range []uint64{a, b, c} {
		if p, _ := s.Get(id); p.A != 1 || p.consistent(id) != "" {
			t.Fatalf("player %d: A = %d (%s), want only its own update", id, p.A, p.consistent(id))
		}
	}
	// A new guard and transaction over the same lanes work.
	var g2 Guard
	if err := s.RunMulti([]uint64{a, b}, &g2, func(vs []*Player) error { vs[0].step(a); vs[1].step(b); return nil }); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Get(a); p.A != 2 {
		t.Fatalf("after the fence: A = %d, want 2", p.A)
	}
}

func TestRunMultiPanicReleasesTheLanes(t *testing.T) {
	s, _ := mustOpen[Player](t, testOptions(t, 16))
	defer s.Close()
	seedCoins(t, s, 3)
	var g Guard
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want boom", r)
			}
		}()
		s.RunMulti([]uint64{1, 2, 3}, &g, func(vs []*Player) error {
			vs[0].Coins, vs[1].Coins = 0, 0
			panic("boom")
		})
	}()
	if err := s.RunMulti([]uint64{3, 2, 1}, &g, transfer([]uint64{3, 2, 1}, 5)); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[uint64]int64{1: startCoins + 5, 2: startCoins + 5, 3: startCoins - 10} {
		if p, _ := s.Get(id); p.Coins != want {
			t.Fatalf("player %d has %d coins, want %d (the panicking transaction must not commit)", id, p.Coins, want)
		}
	}
}
