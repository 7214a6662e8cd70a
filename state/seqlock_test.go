package state

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// Readers racing players that are deleted and created again, in a store so
// small that every slot is reused by other players all the time: a reader
// must see each player whole and as itself, or not at all, never a copy
// mixing two commits or two players that shared a slot. (Each player's
// Check and Tail depend on its id, so a record of another player, or half
// of one, fails consistent.) Run under -race too.
func TestReadersDuringDeleteAndReuse(t *testing.T) {
	// Writers run at least rounds, and on until the readers have found
	// minFound players, so the test checks something however the
	// goroutines are scheduled.
	const writers, idsPer, rounds, minFound = 4, 4, 1500, 2000
	var found atomic.Int64
	s, _ := mustOpen[Player](t, Options{Name: "p", ShmDir: shmDir(t), Capacity: writers * 2, Lanes: 2, Logger: quietLogger()})
	defer s.Close()
	errs := make(chan string, 64)
	report := func(msg string) {
		select {
		case errs <- msg:
		default:
		}
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < rounds || found.Load() < minFound; n++ {
				id := uint64(1 + w*idsPer + n%idsPer)
				if _, err := s.Ensure(id); err != nil {
					continue // full: other writers hold every slot right now
				}
				for range 1 + n%3 {
					if err := s.Update(id, func(p *Player) error { p.step(id); return nil }); err != nil {
						report("Update: " + err.Error())
						return
					}
				}
				if err := s.Delete(id); err != nil {
					report("Delete: " + err.Error())
					return
				}
			}
		}()
	}
	stop := make(chan struct{})
	var rg sync.WaitGroup
	for range 2 {
		rg.Add(1)
		go func() {
			defer rg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				id := uint64(1 + n%(writers*idsPer))
				p, err := s.Get(id)
				switch {
				case errors.Is(err, ErrNotFound):
				case err != nil:
					report("Get: " + err.Error())
				default:
					found.Add(1)
					if msg := p.consistent(id); msg != "" {
						report("Get saw a torn or foreign record: " + msg)
					}
				}
				if m, err := s.Describe(id); err == nil && m["B"] != 2*m["A"].(int64) {
					report("Describe saw a torn record")
				}
				if n%31 == 0 {
					s.Each(func(id uint64, p *Player) bool {
						if msg := p.consistent(id); msg != "" {
							report("Each saw a torn or foreign record: " + msg)
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
	if s.Len() != 0 {
		t.Fatalf("Len = %d after every player was deleted", s.Len())
	}
}
