package main

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hothost/hothost/client"
	"github.com/hothost/hothost/internal/loadgen"
)

// pushFigures are the histograms of the cross-player and push phase.
type pushFigures struct {
	work, give, tell   loadgen.Hist // replies to the sender
	givePush, tellPush loadgen.Hist // send -> the push read by the receiver

	mu       sync.Mutex
	rounds   int64
	firstErr error
}

// pushPhase starts a host with the market and social modules and runs
// pushLatency against it.
func (b *bench) pushPhase() error {
	cfg, err := b.fresh("push", "coin1", "shop", "profile", "market", "social")
	if err != nil {
		return err
	}
	p, err := b.start(b.bins, cfg)
	if err != nil {
		return err
	}
	f, err := b.pushLatency(p.Addr)
	if err != nil {
		return err
	}
	f.rows(b)
	return p.Stop()
}

// pushLatency measures a cross-player transaction against a single-player
// one, and push delivery, on a host with the market and social modules.
// conns/2 pairs of clients run for the phase's duration; in each, a sender
// does in turn `work` (one player), `give <receiver> 1` (two players, one
// transaction, and a push to the receiver) and `tell <receiver> ...` (a
// push, no state); the receiver only reads its pushes. One request is in
// flight per pair, and each push is waited for before the next request,
// so a push is timed alone: from the sender's write to the receiver's read
// of the push line.
func (b *bench) pushLatency(addr string) (*pushFigures, error) {
	f := &pushFigures{}
	var wg sync.WaitGroup
	end := time.Now().Add(b.dur)
	for i := range max(1, b.conns/2) {
		sender, receiver := uint64(7001+2*i), uint64(7002+2*i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.pair(addr, sender, receiver, end); err != nil {
				f.mu.Lock()
				f.firstErr = firstOf(f.firstErr, fmt.Errorf("pair %d -> %d: %w", sender, receiver, err))
				f.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return f, f.firstErr
}

func firstOf(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// arrival is one push line and when the receiver read it.
type arrival struct {
	text string
	at   time.Time
}

// errNoPush means a push did not arrive within the bound.
var errNoPush = errors.New("no push within 10s")

// pair runs one sender and its receiver until end.
func (f *pushFigures) pair(addr string, sender, receiver uint64, end time.Time) error {
	s, err := client.Dial(addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer s.Close()
	r, err := client.Dial(addr, 5*time.Second)
	if err != nil {
		return err
	}
	if _, err := s.Login(sender); err != nil {
		r.Close()
		return err
	}
	if _, err := r.Login(receiver); err != nil {
		r.Close()
		return err
	}
	pushes := make(chan arrival, 1)
	go func() {
		defer close(pushes)
		for {
			text, err := r.NextPush(time.Minute)
			if err != nil {
				return // the connection closed at the end of the phase
			}
			pushes <- arrival{text, time.Now()}
		}
	}()
	defer r.Close()
	// timed sends line and records its reply latency in h, and if push
	// is set, the receiver's arrival of a push starting with it in ph.
	timed := func(line string, h, ph *loadgen.Hist, push string) error {
		t0 := time.Now()
		rep, err := s.Do(line)
		if err != nil {
			return err
		}
		h.Record(time.Since(t0))
		if !rep.OK {
			return fmt.Errorf("%s: %s", line, rep)
		}
		if push == "" {
			return nil
		}
		select {
		case a, ok := <-pushes:
			if !ok || !strings.HasPrefix(a.text, push) {
				return fmt.Errorf("%s: push %q, want %q", line, a.text, push)
			}
			ph.Record(a.at.Sub(t0))
		case <-time.After(10 * time.Second):
			return fmt.Errorf("%s: %w", line, errNoPush)
		}
		return nil
	}
	for n := 0; time.Now().Before(end); n++ {
		steps := []struct {
			line   string
			h, ph  *loadgen.Hist
			prefix string
		}{
			{"work", &f.work, nil, ""},
			{fmt.Sprintf("give %d 1", receiver), &f.give, &f.givePush, fmt.Sprintf("you received 1 coins from %d", sender)},
			{fmt.Sprintf("tell %d round %d", receiver, n), &f.tell, &f.tellPush, fmt.Sprintf("from %d: round %d", sender, n)},
		}
		for _, st := range steps {
			if err := timed(st.line, st.h, st.ph, st.prefix); err != nil {
				return err
			}
		}
		f.mu.Lock()
		f.rounds++
		f.mu.Unlock()
	}
	return nil
}

// rows adds the phase's figures to the report.
func (f *pushFigures) rows(b *bench) {
	q := func(h *loadgen.Hist, p float64) time.Duration { return h.Quantile(p) }
	note := fmt.Sprintf("%d pairs of clients, %d rounds of work, give, tell (one request or push in flight per pair)", max(1, b.conns/2), f.rounds)
	b.add("e2e cross-player give vs single-player work, p50", ms(q(&f.give, 0.5)), ms(q(&f.work, 0.5)),
		x(float64(q(&f.give, 0.5)), float64(q(&f.work, 0.5))), note)
	b.add("e2e cross-player give vs single-player work, p99", ms(q(&f.give, 0.99)), ms(q(&f.work, 0.99)),
		x(float64(q(&f.give, 0.99)), float64(q(&f.work, 0.99))), "")
	for _, p := range []struct {
		what        string
		push, reply *loadgen.Hist
	}{{"give", &f.givePush, &f.give}, {"tell", &f.tellPush, &f.tell}} {
		b.add(fmt.Sprintf("push delivery p50 / p99: %s -> push at the other client vs its reply", p.what),
			ms(q(p.push, 0.5))+" / "+ms(q(p.push, 0.99)), ms(q(p.reply, 0.5))+" / "+ms(q(p.reply, 0.99)),
			x(float64(q(p.push, 0.5)), float64(q(p.reply, 0.5)))+" / "+x(float64(q(p.push, 0.99)), float64(q(p.reply, 0.99))),
			fmt.Sprintf("%d pushes; from the sender's write to the receiver's read of the push line", p.push.Count()))
	}
}
