package host_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// give and trade change two players in one transaction, tell the other
// one with a push, and change nothing when they fail.
func TestGiveAndTrade(t *testing.T) {
	t.Parallel()
	p, _ := startHost(t)
	ada, bob := dial(t, p, 41), dial(t, p, 42)
	for range 5 {
		do(t, ada, "work") // 50 coins
	}
	if r := do(t, ada, "give 42 15"); !r.OK || !strings.HasPrefix(r.Text, "gave 15 coins to 42; coins 35") {
		t.Fatalf("give: %v", r)
	}
	if got, err := bob.NextPush(time.Minute); err != nil || got != "you received 15 coins from 41" {
		t.Fatalf("push to the receiver: %q %v", got, err)
	}
	if a, b := coins(t, p, 41), coins(t, p, 42); a != 35 || b != 15 {
		t.Fatalf("after give: ada %d bob %d", a, b)
	}
	for _, bad := range []struct{ line, code string }{
		{"give 42 1000", "funds"}, {"give 999 1", "player"}, {"give 41 1", "usage"}, {"give 42 -3", "usage"}, {"give x 1", "usage"},
		{"trade 42 potion 5", "item"},
	} {
		if r := do(t, ada, bad.line); r.OK || r.Code != bad.code {
			t.Fatalf("%s: %v, want err %s", bad.line, r, bad.code)
		}
	}
	if a, b := coins(t, p, 41), coins(t, p, 42); a != 35 || b != 15 {
		t.Fatalf("failed requests changed coins: ada %d bob %d", a, b)
	}
	do(t, ada, "buy potion") // 30 coins and a potion
	if r := do(t, ada, "trade 42 potion 12"); !r.OK || !strings.Contains(r.Text, "sold potion to 42 for 12 coins; coins 42") {
		t.Fatalf("trade: %v", r)
	}
	if r := do(t, bob, "inventory"); !strings.Contains(r.Text, "potion=1") {
		t.Fatalf("bob's inventory after the trade: %v", r)
	}
	if a, b := coins(t, p, 41), coins(t, p, 42); a != 42 || b != 3 {
		t.Fatalf("after trade: ada %d bob %d", a, b)
	}
}

// Many concurrent cross-gifts among a few players, from several
// connections each: no deadlock, and not one coin created or destroyed.
func TestConcurrentGiftsConserveCoins(t *testing.T) {
	t.Parallel()
	p, _ := startHost(t)
	players := []uint64{51, 52, 53, 54}
	var total int64
	for _, id := range players {
		c := dial(t, p, id)
		for range 10 {
			do(t, c, "work")
		}
		total += coins(t, p, id)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 12 {
		from := players[w%len(players)]
		c := dial(t, p, from)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range 150 {
				to := players[rng.IntN(len(players))]
				if to == from {
					continue
				}
				r, err := c.Do(fmt.Sprintf("give %d %d", to, 1+rng.IntN(5)))
				if err != nil || !r.OK && r.Code != "funds" {
					errs <- fmt.Errorf("give from %d to %d: %v %v", from, to, r, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var after int64
	for _, id := range players {
		after += coins(t, p, id)
	}
	if after != total {
		t.Fatalf("coins before %d, after %d concurrent gifts", total, after)
	}
}
