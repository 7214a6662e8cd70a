package ticket_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hothost/hothost/ticket"
)

func allow(t *testing.T, l *ticket.Limiter, addr string, at time.Time, wantOK bool, wantWait time.Duration) {
	t.Helper()
	if ok, wait := l.Allow(addr, at); ok != wantOK || wait != wantWait {
		t.Fatalf("Allow(%s, t0%+v) = %v, %v; want %v, %v", addr, at.Sub(t0), ok, wait, wantOK, wantWait)
	}
}

func TestLimiterPerAddress(t *testing.T) {
	l := ticket.NewLimiter(ticket.Limits{Burst: 3, Every: 10 * time.Second})
	a, b := "192.0.2.1:5000", "192.0.2.2:5000"
	for range 3 {
		allow(t, l, a, t0, true, 0)
		l.Failed(a, t0)
	}
	allow(t, l, a, t0, false, 10*time.Second)
	allow(t, l, "192.0.2.1:6000", t0, false, 10*time.Second) // another port, same address
	allow(t, l, "192.0.2.1", t0, false, 10*time.Second)      // a bare IP
	allow(t, l, "[::ffff:192.0.2.1]:5000", t0, false, 10*time.Second)
	allow(t, l, b, t0, true, 0) // another address is not slowed

	// Past the burst: one more try per Every.
	allow(t, l, a, t0.Add(7*time.Second), false, 3*time.Second)
	allow(t, l, a, t0.Add(10*time.Second), true, 0)
	l.Failed(a, t0.Add(10*time.Second))
	allow(t, l, a, t0.Add(10*time.Second+time.Millisecond), false, 10*time.Second-time.Millisecond)

	// Failures charged while refused do not lengthen the wait past Every.
	for range 100 {
		l.Failed(a, t0.Add(11*time.Second))
	}
	allow(t, l, a, t0.Add(11*time.Second), false, 10*time.Second)

	// Once the whole burst is back the address is forgotten.
	if l.Len() != 1 {
		t.Fatalf("tracking %d addresses, want 1", l.Len())
	}
	allow(t, l, a, t0.Add(41*time.Second), true, 0)
	if l.Len() != 0 {
		t.Fatalf("tracking %d addresses after the burst refilled, want 0", l.Len())
	}
}

// One IPv6 subscriber holds a /64: its 2^64 addresses share one bucket.
func TestLimiterIPv6Per64(t *testing.T) {
	l := ticket.NewLimiter(ticket.Limits{Burst: 1, Every: time.Minute})
	l.Failed("[2001:db8:1:2::1]:7070", t0)
	allow(t, l, "[2001:db8:1:2:ffff:ffff:ffff:ffff]:9", t0, false, time.Minute)
	allow(t, l, "2001:db8:1:2::99", t0, false, time.Minute)
	allow(t, l, "[fe80::1%eth0]:7070", t0, true, 0)
	allow(t, l, "[2001:db8:1:3::1]:7070", t0, true, 0) // the next /64
	l.Failed("not an address", t0)
	allow(t, l, "not an address", t0, false, time.Minute)
	allow(t, l, "@", t0, true, 0)
}

// A flood of failing addresses cannot grow the limiter past its cap; the
// addresses that failed most recently are the ones kept.
func TestLimiterBounded(t *testing.T) {
	l := ticket.NewLimiter(ticket.Limits{Burst: 1, Every: time.Hour, Addresses: 100})
	for i := range 10_000 {
		l.Failed(fmt.Sprintf("10.%d.%d.%d:1", i>>16&255, i>>8&255, i&255), t0)
		if n := l.Len(); n > 100 {
			t.Fatalf("after %d addresses: tracking %d, cap 100", i+1, n)
		}
	}
	if l.Len() != 100 {
		t.Fatalf("tracking %d, want the cap, 100", l.Len())
	}
	last, first := 10_000-1, 0
	allow(t, l, fmt.Sprintf("10.%d.%d.%d", last>>16&255, last>>8&255, last&255), t0, false, time.Hour)
	allow(t, l, fmt.Sprintf("10.%d.%d.%d", first>>16&255, first>>8&255, first&255), t0, true, 0)

	// A good login costs nothing: many addresses asking leave no trace.
	l2 := ticket.NewLimiter(ticket.Limits{})
	for i := range 10_000 {
		l2.Allow(fmt.Sprintf("10.0.%d.%d:1", i>>8&255, i&255), t0)
	}
	if l2.Len() != 0 {
		t.Fatalf("tracking %d addresses that never failed", l2.Len())
	}
}

// Refreshing an address moves it to the front: a steady guesser is not
// evicted by a flood of others as long as it keeps failing.
func TestLimiterKeepsRecent(t *testing.T) {
	l := ticket.NewLimiter(ticket.Limits{Burst: 1, Every: time.Hour, Addresses: 3})
	for _, a := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1", "10.0.0.4"} {
		l.Failed(a, t0)
	}
	allow(t, l, "10.0.0.1", t0, false, time.Hour)
	allow(t, l, "10.0.0.2", t0, true, 0) // the least recent, evicted
	allow(t, l, "10.0.0.4", t0, false, time.Hour)
}

func TestLimiterConcurrent(t *testing.T) {
	l := ticket.NewLimiter(ticket.Limits{Burst: 2, Every: time.Second, Addresses: 50})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				addr := fmt.Sprintf("10.0.%d.%d", g, i%100)
				if ok, _ := l.Allow(addr, t0); ok {
					l.Failed(addr, t0)
				}
			}
		})
	}
	wg.Wait()
	if l.Len() > 50 {
		t.Fatalf("tracking %d addresses, cap 50", l.Len())
	}
}
