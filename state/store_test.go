package state

import (
	"errors"
	"sync"
	"testing"
	"unsafe"
)

func TestPlayerIs256Bytes(t *testing.T) {
	if n := unsafe.Sizeof(Player{}); n != 256 {
		t.Fatalf("Player is %d bytes; the benchmarks assume 256", n)
	}
}

func TestOpenCreateThenAttach(t *testing.T) {
	opts := testOptions(t, 100)
	s, rep := mustOpen[Player](t, opts)
	if rep.How != Created || rep.Players != 0 || rep.Capacity != 100 {
		t.Fatalf("first open: %v", rep)
	}
	for id := uint64(1); id <= 10; id++ {
		created, err := s.Ensure(id * 1000)
		if err != nil || !created {
			t.Fatalf("Ensure(%d) = %v, %v", id, created, err)
		}
	}
	if created, err := s.Ensure(5000); err != nil || created {
		t.Fatalf("second Ensure(5000) = %v, %v; want false, nil", created, err)
	}
	if err := s.Update(3000, func(p *Player) error { p.step(3000); p.Coins = 77; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, rep = mustOpen[Player](t, opts)
	defer s.Close()
	if rep.How != Attached || rep.Players != 10 {
		t.Fatalf("reopen: %v", rep)
	}
	p, err := s.Get(3000)
	if err != nil || p.Coins != 77 || p.A != 1 || p.consistent(3000) != "" {
		t.Fatalf("Get(3000) = %+v, %v", p, err)
	}
	if _, err := s.Get(42); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(42) error %v, want ErrNotFound", err)
	}
	if err := s.Update(42, func(*Player) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Update(42) error %v, want ErrNotFound", err)
	}
	m, err := s.Describe(3000)
	if err != nil || m["Coins"] != int64(77) || m["B"] != int64(2) {
		t.Fatalf("Describe = %v, %v", m, err)
	}
	if inv, ok := m["Inv"].([]any); !ok || len(inv) != 24 || inv[2].(map[string]any)["Count"] != uint64(3) {
		t.Fatalf("Describe Inv = %v", m["Inv"])
	}
}

func TestCallbackErrorOrPanicChangesNothing(t *testing.T) {
	s, _ := mustOpen[Player](t, testOptions(t, 10))
	defer s.Close()
	s.Ensure(1)
	s.Update(1, func(p *Player) error { p.step(1); return nil })
	before, _ := s.Get(1)

	boom := errors.New("boom")
	err := s.Update(1, func(p *Player) error { p.step(1); p.Coins = 1e6; return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("error callback: Update returned %v, want boom", err)
	}
	err = s.Update(1, func(p *Player) error { p.step(1); p.Coins = 1e6; panic("handler bug") })
	var pe *PanicError
	if !errors.Is(err, ErrPanic) || !errors.As(err, &pe) || pe.Value != "handler bug" || len(pe.Stack) == 0 || pe.ID != 1 {
		t.Fatalf("panic callback: Update returned %#v", err)
	}
	err = s.Update(1, func(p *Player) error { p.Coins = 5; panic(boom) })
	if !errors.Is(err, ErrPanic) || !errors.Is(err, boom) {
		t.Fatalf("panic(err): Update returned %v; want it to wrap ErrPanic and boom", err)
	}
	if after, _ := s.Get(1); after != before {
		t.Fatalf("player changed by failed updates:\nbefore %+v\nafter  %+v", before, after)
	}
	// The lane is usable after a panic (its mutex was released).
	if err := s.Update(1, func(p *Player) error { p.step(1); return nil }); err != nil {
		t.Fatal(err)
	}
	if after, _ := s.Get(1); after.A != before.A+1 {
		t.Fatalf("A = %d after a good update, want %d", after.A, before.A+1)
	}
}

func TestDeleteAndReuse(t *testing.T) {
	s, _ := mustOpen[Player](t, testOptions(t, 64))
	defer s.Close()
	// Fill to capacity so that deletes shift index clusters around.
	for id := uint64(0); id < 64; id++ {
		if _, err := s.Ensure(id); err != nil {
			t.Fatal(err)
		}
		s.Update(id, func(p *Player) error { p.Coins = int64(id); return nil })
	}
	if _, err := s.Ensure(999); err == nil {
		t.Fatal("Ensure beyond capacity succeeded")
	}
	for id := uint64(0); id < 64; id += 2 {
		if err := s.Delete(id); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete: %v", err)
	}
	for id := uint64(0); id < 64; id++ {
		p, err := s.Get(id)
		if id%2 == 0 && !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleted %d: %v", id, err)
		}
		if id%2 == 1 && (err != nil || p.Coins != int64(id)) {
			t.Fatalf("kept %d: %+v %v", id, p.Coins, err)
		}
	}
	if s.Len() != 32 {
		t.Fatalf("Len %d", s.Len())
	}
	for id := uint64(100); id < 132; id++ {
		if created, err := s.Ensure(id); !created || err != nil {
			t.Fatal(created, err)
		}
		if p, _ := s.Get(id); p != (Player{}) {
			t.Fatalf("reused slot not zero: %+v", p)
		}
	}
	seen := 0
	s.Each(func(id uint64, p *Player) bool { seen++; return true })
	if seen != 64 {
		t.Fatalf("Each saw %d", seen)
	}
}

// Different players updated from many goroutines at once, with readers
// checking that they never see half an update. Run under -race.
func TestConcurrentPlayers(t *testing.T) {
	s, _ := mustOpen[Player](t, Options{Name: "p", ShmDir: shmDir(t), Capacity: 64, Lanes: 4, Logger: quietLogger()})
	defer s.Close()
	const players, rounds = 16, 2000
	for id := uint64(0); id < players; id++ {
		s.Ensure(id)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan string, 100)
	for id := uint64(0); id < players; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				if err := s.Update(id, func(p *Player) error { p.step(id); return nil }); err != nil {
					errs <- err.Error()
					return
				}
			}
		}()
	}
	var rg sync.WaitGroup
	for r := range 3 {
		rg.Add(1)
		go func() {
			defer rg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				id := uint64(n+r) % players
				p, err := s.Get(id)
				if err != nil {
					errs <- err.Error()
					return
				}
				if msg := p.consistent(id); msg != "" {
					errs <- "Get saw half an update: " + msg
					return
				}
				if n%97 == 0 {
					s.Each(func(id uint64, p *Player) bool {
						if msg := p.consistent(id); msg != "" {
							errs <- "Each saw half an update: " + msg
							return false
						}
						return true
					})
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	rg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	for id := uint64(0); id < players; id++ {
		if p, _ := s.Get(id); p.A != rounds {
			t.Errorf("player %d: A = %d after %d updates", id, p.A, rounds)
		}
	}
}

// TestSharedMemoryPerPlayer pins the memory claim: one 256-byte player
// costs at most 1.13x its raw size in shared memory (record header 16,
// shmpool state word 8, index 6), plus fixed overhead; timer slots are a
// budget of their own (Options.Timers), 136 bytes each.
func TestSharedMemoryPerPlayer(t *testing.T) {
	const n = 100_000
	s, rep := mustOpen[Player](t, testOptions(t, n))
	defer s.Close()
	timers := s.geom.bodies + rep.TimerSlots*timerBodySize - s.geom.words // the words, the bodies, and padding
	if per := float64(timers) / float64(rep.TimerSlots); rep.TimerSlots != defaultTimers(n) || per > 136.1 {
		t.Fatalf("%d timer slots in %d bytes: %.1f bytes each; want %d of 136", rep.TimerSlots, timers, per, defaultTimers(n))
	}
	players := rep.SegmentBytes - timers
	ratio := float64(players) / n / float64(unsafe.Sizeof(Player{}))
	t.Logf("%d bytes for %d players: %.1f bytes/player, %.3fx raw; %d bytes for %d timer slots", players, n, float64(players)/n, ratio, timers, rep.TimerSlots)
	if ratio > 1.13 {
		t.Fatalf("%.3fx raw size", ratio)
	}
}
