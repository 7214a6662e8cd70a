package loadgen

import (
	"context"
	"slices"
	"strings"
	"testing"
)

func solutions(targets []int64, terms []term) ([][]int, bool) {
	var all [][]int
	ok := solve(targets, terms, func(c []int) { all = append(all, slices.Clone(c)) })
	return all, ok
}

func TestSolve(t *testing.T) {
	for _, c := range []struct {
		name    string
		targets []int64
		terms   []term
		want    [][]int
	}{
		{"nothing to explain", []int64{0}, nil, [][]int{{}}},
		{"a difference nothing explains", []int64{5}, nil, nil},
		{"one move of two in", []int64{7}, []term{{b: -1, vals: []int64{3}}, {b: -1, vals: []int64{7}}}, [][]int{{0, 1}}},
		{"equal moves: either", []int64{4}, []term{{b: -1, vals: []int64{4}}, {b: -1, vals: []int64{4}}}, [][]int{{0, 1}, {1, 0}}},
		{"a work of 10 or 20", []int64{20}, []term{{b: -1, vals: []int64{10, 20}}}, [][]int{{2}}},
		{"none fits", []int64{6}, []term{{b: -1, vals: []int64{4}}, {b: -1, vals: []int64{5}}}, nil},
		// A give of 5 from account 0 to 1 (vals are account 0's delta):
		// both accounts must show it, or neither.
		{"a move seen from both sides", []int64{-5, 5}, []term{{a: 0, b: 1, vals: []int64{-5}}}, [][]int{{1}}},
		{"half a move fits no side", []int64{-5, 0}, []term{{a: 0, b: 1, vals: []int64{-5}}}, nil},
		// Account 1 also lost a work of 10: it did not commit.
		{"a move and a pile", []int64{-5, 5}, []term{{a: 0, b: 1, vals: []int64{-5}}, {a: 1, b: -1, vals: []int64{10, 20}}}, [][]int{{1, 0}}},
	} {
		got, ok := solutions(c.targets, c.terms)
		if !ok || !slices.EqualFunc(got, c.want, slices.Equal) {
			t.Errorf("%s: solutions %v (complete %v), want %v", c.name, got, ok, c.want)
		}
	}
}

func TestSolveGivesUp(t *testing.T) {
	terms := make([]term, 30)
	for i := range terms {
		terms[i] = term{a: 0, b: 1, vals: []int64{1}}
	}
	if _, ok := solutions([]int64{-1 << 40, 1 << 40}, terms); ok {
		t.Fatal("2^30 choices searched to the end")
	}
}

func TestPile(t *testing.T) {
	p := &pile{vals: [][]int64{{10, 20}, {10, 20}, {-5}}}
	p.effects = make([]*effect, 3)
	if got, want := p.sums(), []int64{-5, 5, 10, 15, 20, 25, 30, 35, 40}; !slices.Equal(got, want) {
		t.Errorf("sums %v, want %v", got, want)
	}
	// Effect by effect, the smallest change that leaves the rest makeable.
	for s, want := range map[int64][]int64{20: {10, 10, 0}, 15: {10, 10, -5}, 35: {20, 20, -5}, 0: {0, 0, 0}} {
		if got := p.split(s); !slices.Equal(got, want) {
			t.Errorf("split(%d) = %v, want %v", s, got, want)
		}
	}
}

// newTestLedger has players 1..n, each known with coins.
func newTestLedger(n int, coins int64) *ledger {
	led := newLedger(1, n, map[string]int64{"v1": 10}, map[string]int64{"potion": 5})
	for id := uint64(1); id <= uint64(n); id++ {
		led.observe(led.accounts[id], 0, coins, 0, "balance")
	}
	return led
}

func move(led *ledger, from, to uint64, ownerDelta int64) *effect {
	e := &effect{cmd: "give", kind: kindMove, owner: led.accounts[from], other: led.accounts[to], vals: []int64{ownerDelta}}
	led.send(e)
	return e
}

// Player 1 gives 7 to player 2; player 2's work reply shows the 7 before
// player 1's reply arrives: the give is placed as committed, and its own
// reply later does not count it twice.
func TestMoveSeenByItsReceiverFirst(t *testing.T) {
	led := newTestLedger(2, 100)
	a, b := led.accounts[1], led.accounts[2]
	sent := led.seq.Load()
	g := move(led, 1, 2, -7)
	led.observe(b, sent, 117, 10, "work") // 100 + 10 + 7
	if g.state != committed || b.Coins != 117 {
		t.Fatalf("give %v, player 2 holds %d", g.state, b.Coins)
	}
	led.acked(g, -7)
	led.observe(a, sent, 93, -7, "give")
	if a.Coins != 93 || b.Coins != 117 || led.moves != 1 || led.moved != 7 || len(led.violations) != 0 {
		t.Fatalf("players hold %d and %d, %d moves of %d coins, violations %v", a.Coins, b.Coins, led.moves, led.moved, led.violations)
	}
}

// A give acknowledged while player 2's read was out may or may not be in
// it; a read that left after the acknowledgement must show it.
func TestMoveAcknowledgedDuringARead(t *testing.T) {
	led := newTestLedger(2, 100)
	b := led.accounts[2]
	early := led.seq.Load()
	g := move(led, 1, 2, -7)
	led.acked(g, -7)
	late := led.seq.Load()
	led.observe(b, early, 110, 10, "work") // before the give
	led.observe(b, late, 127, 10, "work")  // after it: 117 + 10
	led.observe(b, late, 127, 0, "balance")
	if len(led.violations) != 0 || b.Coins != 127 {
		t.Fatalf("player 2 holds %d; violations %v", b.Coins, led.violations)
	}
	led.observe(b, late, 120, 0, "balance") // without the give: a coin change nobody made
	if len(led.violations) != 1 || !strings.Contains(led.violations[0], "player 2 balance: the server shows 120 coins, the ledger holds 127") {
		t.Fatalf("violations %v", led.violations)
	}
}

// A give refused after its receiver's read showed it: a violation.
func TestRefusedAfterSeen(t *testing.T) {
	led := newTestLedger(2, 100)
	sent := led.seq.Load()
	g := move(led, 1, 2, -7)
	led.observe(led.accounts[2], sent, 107, 0, "balance")
	led.refused(g)
	if len(led.violations) != 1 || !strings.Contains(led.violations[0], "refused, but player 2's read showed it committed") {
		t.Fatalf("violations %v", led.violations)
	}
}

// A give whose connection was cut: its owner's read after reconnecting
// shows it did not commit, and the receiver no longer waits for it.
func TestCutMovePlacedByItsOwner(t *testing.T) {
	led := newTestLedger(2, 100)
	a, b := led.accounts[1], led.accounts[2]
	g := move(led, 1, 2, -7)
	led.lost(g)
	if a.Pending != "give" {
		t.Fatalf("pending %q", a.Pending)
	}
	led.observe(a, led.seq.Load(), 100, 0, "balance after login")
	if g.state != failed || a.Pending != "" || len(a.open) != 0 {
		t.Fatalf("give %v, pending %q, open %v", g.state, a.Pending, a.open)
	}
	led.observe(b, led.seq.Load(), 100, 0, "balance")
	if len(b.open) != 0 || len(led.violations) != 0 {
		t.Fatalf("player 2 open %v, violations %v", b.open, led.violations)
	}
}

// A kill cut a give of 10 from 1 to 2 and a work of each. Reading both
// players places them all: 1 shows 90, so the give committed and its
// work did not; then 2's 120 is the give and its work.
func TestAuditPlacesWhatTiesTwoPlayers(t *testing.T) {
	led := newTestLedger(2, 100)
	g := move(led, 1, 2, -10)
	led.lost(g)
	led.lostOwn(led.accounts[1], kindWork, "work", "")
	led.lostOwn(led.accounts[2], kindWork, "work", "")
	server := map[uint64]int64{1: 90, 2: 120}
	ck := led.audit(t.Context(), func(_ context.Context, id uint64) (int64, error) { return server[id], nil })
	if !ck.OK() || !ck.TotalOK || ck.Exact != 2 || g.state != committed || ck.Earned != 10 || ck.LostReplies != 2 || ck.Total != 210 {
		t.Fatalf("%s %v; give %v", ck, ck.Violations, g.state)
	}
	// Had 2 shown 111, a coin would have come from nowhere.
	led.lostOwn(led.accounts[2], kindWork, "work", "")
	server[2] = 121
	ck = led.audit(t.Context(), func(_ context.Context, id uint64) (int64, error) { return server[id], nil })
	if ck.TotalOK || !strings.Contains(strings.Join(ck.Violations, "\n"), "coins were created or destroyed") {
		t.Fatalf("a created coin went unseen: %s %v", ck, ck.Violations)
	}
}
