package state

import (
	"errors"
	"testing"
)

// sameLane returns two players that share a lane.
func sameLane(t *testing.T, s *Store[Player]) (uint64, uint64) {
	t.Helper()
	for b := uint64(2); b < 1<<20; b++ {
		if s.LaneOf(b) == s.LaneOf(1) {
			return 1, b
		}
	}
	t.Fatal("no two players share a lane")
	return 0, 0
}

func TestFenceFreesTheLane(t *testing.T) {
	s, _ := mustOpen[Player](t, testOptions(t, 64))
	defer s.Close()
	stuck, other := sameLane(t, s)
	for _, id := range []uint64{stuck, other} {
		if _, err := s.Ensure(id); err != nil {
			t.Fatal(err)
		}
	}
	var g Guard
	entered, release, done := make(chan struct{}), make(chan struct{}), make(chan error)
	go func() {
		done <- s.Run(stuck, &g, func(p *Player) error {
			p.step(stuck)
			close(entered)
			<-release // a handler that does not return
			p.step(stuck)
			return nil
		})
	}()
	<-entered
	if !fence(s, &g) {
		t.Fatal("Fence of a running transaction reported false")
	}
	if fence(s, &g) {
		t.Fatal("second Fence reported true")
	}
	if !g.Fenced() || g.Claim() {
		t.Fatalf("guard after Fence: fenced %v, claim succeeded", g.Fenced())
	}
	// The other player of the lane is served while the callback is stuck.
	if err := s.Update(other, func(p *Player) error { p.step(other); return nil }); err != nil {
		t.Fatalf("update on the fenced lane: %v", err)
	}
	close(release)
	if err := <-done; !errors.Is(err, ErrFenced) {
		t.Fatalf("fenced Run returned %v, want ErrFenced", err)
	}
	if p, _ := s.Get(stuck); p.A != 0 {
		t.Fatalf("fenced transaction committed: A = %d", p.A)
	}
	if p, _ := s.Get(other); p.A != 1 || p.consistent(other) != "" {
		t.Fatalf("other player: A = %d (%s)", p.A, p.consistent(other))
	}
	// The lane keeps working for both players, and the store closes.
	if err := s.Update(stuck, func(p *Player) error { p.step(stuck); return nil }); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Get(stuck); p.A != 1 {
		t.Fatalf("after the fence: A = %d, want 1", p.A)
	}
}

func TestFenceAfterReturnChangesNothing(t *testing.T) {
	s, _ := mustOpen[Player](t, testOptions(t, 8))
	defer s.Close()
	s.Ensure(7)
	var g Guard
	err := s.Run(7, &g, func(p *Player) error {
		p.step(7)
		if !g.Claim() {
			t.Error("Claim of a running transaction failed")
		}
		if fence(s, &g) {
			t.Error("Fence after Claim reported true")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fence(s, &g) {
		t.Fatal("Fence of an ended transaction reported true")
	}
	if p, _ := s.Get(7); p.A != 1 {
		t.Fatalf("A = %d, want 1", p.A)
	}
}

func TestRunPanicReleasesTheLane(t *testing.T) {
	s, _ := mustOpen[Player](t, testOptions(t, 8))
	defer s.Close()
	s.Ensure(3)
	var g Guard
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want boom", r)
			}
		}()
		s.Run(3, &g, func(p *Player) error { p.step(3); panic("boom") })
	}()
	if err := s.Update(3, func(p *Player) error { p.step(3); p.step(3); return nil }); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Get(3); p.A != 2 {
		t.Fatalf("A = %d, want 2 (the panicking run must not commit)", p.A)
	}
}

func TestRunMissingPlayer(t *testing.T) {
	s, _ := mustOpen[Player](t, testOptions(t, 8))
	defer s.Close()
	var g Guard
	if err := s.Run(99, &g, func(*Player) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Run of a missing player: %v", err)
	}
	if fence(s, &g) {
		t.Fatal("Fence after a failed Run reported true")
	}
}

// fence fences whatever g runs now.
func fence(s *Store[Player], g *Guard) bool {
	tok, ok := g.Running()
	return ok && s.Fence(g, tok, nil)
}

func TestStaleTokenFencesNothing(t *testing.T) {
	s, _ := mustOpen[Player](t, testOptions(t, 8))
	defer s.Close()
	s.Ensure(5)
	var g Guard
	var tok uint64
	s.Run(5, &g, func(p *Player) error { tok, _ = g.Running(); return nil })
	err := s.Run(5, &g, func(p *Player) error {
		if s.Fence(&g, tok, nil) {
			t.Error("a token of an earlier transaction fenced the running one")
		}
		p.step(5)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Get(5); p.A != 1 {
		t.Fatalf("A = %d, want 1", p.A)
	}
}
