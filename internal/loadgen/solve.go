package loadgen

import (
	"cmp"
	"slices"
)

// term is one unknown of a solve: a change of coins the ledger has not
// placed. With option k >= 1 it adds vals[k-1] to account a and takes it
// from account b (b < 0: there is no second account, as for a player's
// own works and buys); with option 0 (it did not commit, or the read came
// before it) it changes nothing.
type term struct {
	a, b int
	vals []int64
}

// maxNodes bounds one solve. The unknowns of one read are the moves in
// flight towards one player and what a kill cut, a handful; an audit after
// a kill has one unknown per cut request. A solve that needs more steps is
// given up and reported as not checkable.
const maxNodes = 1 << 20

// solve finds every choice of one option per term under which the sum of
// each account i equals targets[i], and calls found with each (choice[t]
// is term t's option; valid only during the call). It returns false if it
// gave up after maxNodes steps, having called found for some solutions
// only.
func solve(targets []int64, terms []term, found func(choice []int)) bool {
	// An account is checked as soon as the last term touching it has
	// chosen: that prunes a choice at the first account it breaks. The
	// last term of an account that touches no other can only take the
	// option that makes the account's sum: it is looked up, not tried.
	last := make([]int, len(targets))
	for i := range last {
		last[i] = -1
	}
	for t, tm := range terms {
		last[tm.a] = t
		if tm.b >= 0 {
			last[tm.b] = t
		}
	}
	checks := make([][]int, len(terms))
	for i, t := range last {
		if t < 0 {
			if targets[i] != 0 {
				return true // nothing can explain this account's difference
			}
			continue
		}
		checks[t] = append(checks[t], i)
	}
	closing := make([]map[int64]int, len(terms))
	for t, tm := range terms {
		if tm.b < 0 && last[tm.a] == t {
			closing[t] = map[int64]int{0: 0}
			for k, v := range tm.vals {
				if _, dup := closing[t][v]; !dup {
					closing[t][v] = k + 1
				}
			}
		}
	}
	sum := make([]int64, len(targets))
	choice := make([]int, len(terms))
	nodes := 0
	var dfs func(t int) bool
	dfs = func(t int) bool {
		if t == len(terms) {
			found(choice)
			return true
		}
		tm := terms[t]
		if closing[t] != nil {
			nodes++
			k, ok := closing[t][targets[tm.a]-sum[tm.a]]
			if !ok {
				return true
			}
			choice[t] = k
			return dfs(t + 1)
		}
		for k := 0; k <= len(tm.vals); k++ {
			if nodes++; nodes > maxNodes {
				return false
			}
			var v int64
			if k > 0 {
				v = tm.vals[k-1]
			}
			sum[tm.a] += v
			if tm.b >= 0 {
				sum[tm.b] -= v
			}
			choice[t] = k
			fits := true
			for _, i := range checks[t] {
				fits = fits && sum[i] == targets[i]
			}
			if fits && !dfs(t+1) {
				return false
			}
			sum[tm.a] -= v
			if tm.b >= 0 {
				sum[tm.b] += v
			}
		}
		return true
	}
	return dfs(0)
}

// agreement collects the solutions of a solve: how many there were, the
// first one, and for each term whether every solution chose the same.
type agreement struct {
	n     int
	first []int
	same  []bool
}

func (g *agreement) add(choice []int) {
	if g.n == 0 {
		g.first = slices.Clone(choice)
		g.same = make([]bool, len(choice))
		for i := range g.same {
			g.same[i] = true
		}
	}
	for t, k := range choice {
		g.same[t] = g.same[t] && k == g.first[t]
	}
	g.n++
}

// pile is a player's own works and buys whose replies were lost, solved as
// one unknown: its coins and the total depend only on what they added
// together (two lost works that added 20 coins are 10 + 10 or 20 + 0 alike).
type pile struct {
	effects []*effect
	vals    [][]int64 // per effect: the nonzero deltas it may have made
}

// reach is every sum the effects from i on can make, for each i.
func (p *pile) reach() []map[int64]bool {
	r := make([]map[int64]bool, len(p.effects)+1)
	r[len(p.effects)] = map[int64]bool{0: true}
	for i := len(p.effects) - 1; i >= 0; i-- {
		r[i] = map[int64]bool{}
		for s := range r[i+1] {
			r[i][s] = true
			for _, v := range p.vals[i] {
				r[i][s+v] = true
			}
		}
	}
	return r
}

// sums is every nonzero total the pile can make, in ascending order.
func (p *pile) sums() []int64 {
	var s []int64
	for v := range p.reach()[0] {
		if v != 0 {
			s = append(s, v)
		}
	}
	slices.Sort(s)
	return s
}

// split says what each effect made (0: it did not commit) for a total of
// s that the pile can make. Where several splits make s it takes, effect
// by effect, the smallest change that still leaves the rest makeable.
func (p *pile) split(s int64) []int64 {
	r := p.reach()
	out := make([]int64, len(p.effects))
	for i := range p.effects {
		vals := slices.Clone(p.vals[i])
		slices.SortFunc(vals, func(x, y int64) int { return cmp.Compare(max(x, -x), max(y, -y)) })
		for _, v := range vals {
			if r[i+1][s-v] {
				out[i] = v
				break
			}
		}
		s -= out[i]
	}
	return out
}
