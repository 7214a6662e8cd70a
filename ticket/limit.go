package ticket

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// Limits configures a Limiter. Zero fields take their defaults.
type Limits struct {
	// Burst is how many failed logins an address may make in a row
	// (default 5).
	Burst int
	// Every is how often an address regains one failed login (default 2s):
	// past the burst, a guesser gets one try per Every.
	Every time.Duration
	// Addresses is how many addresses are tracked at most (default
	// 10000, about a megabyte). Past it, the address that failed least
	// recently is forgotten.
	Addresses int
}

// Limiter limits failed logins per remote address. Only failures cost: a
// player who logs in right the first time is never slowed, and a flood of
// good logins takes no memory. It is safe for concurrent use.
//
// Each address has a token bucket, kept as the one instant at which it is
// full again (the generic cell rate algorithm): a failure pushes that
// instant Every further, and an attempt is allowed while it lies less than
// Burst*Every ahead. A bucket that is full again carries no information
// and is dropped when next seen.
//
// Ports are ignored, and IPv6 addresses count per /64, the block one
// subscriber usually holds: otherwise a single host could try from 2^64
// addresses.
//
// x/time/rate's Limiter was considered and not used: it keeps a mutex per
// bucket (the map needs one lock anyway), and answering "may this address
// try?" without charging it, then charging only failures, takes a
// reservation and a cancel there, where here it is one comparison.
type Limiter struct {
	burst     time.Duration // Burst*Every: how far ahead the full instant may lie
	every     time.Duration
	addresses int

	mu    sync.Mutex
	byKey map[string]*list.Element // of *bucket
	lru   list.List                // front: most recently failed
}

type bucket struct {
	key  string
	full time.Time // when this address has its whole burst again
}

// NewLimiter returns a Limiter with limits l.
func NewLimiter(l Limits) *Limiter {
	if l.Burst < 1 {
		l.Burst = 5
	}
	if l.Every <= 0 {
		l.Every = 2 * time.Second
	}
	if l.Addresses < 1 {
		l.Addresses = 10000
	}
	return &Limiter{burst: time.Duration(l.Burst) * l.Every, every: l.Every, addresses: l.Addresses,
		byKey: map[string]*list.Element{}}
}

// Allow reports whether addr may try to log in at now and, if not, how long
// it must wait. addr is a remote address as net.Conn gives it ("ip:port")
// or a bare IP; anything else counts as itself.
func (l *Limiter) Allow(addr string, now time.Time) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, found := l.byKey[key(addr)]
	if !found {
		return true, 0
	}
	b := e.Value.(*bucket)
	if !b.full.After(now) {
		l.drop(e)
		return true, 0
	}
	if wait := b.full.Sub(now) - (l.burst - l.every); wait > 0 {
		return false, wait
	}
	return true, 0
}

// Failed charges addr with one failed login at now.
func (l *Limiter) Failed(addr string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := key(addr)
	e, found := l.byKey[k]
	if !found {
		if l.lru.Len() >= l.addresses {
			l.drop(l.lru.Back())
		}
		e = l.lru.PushFront(&bucket{key: k})
		l.byKey[k] = e
	}
	b := e.Value.(*bucket)
	if b.full.Before(now) {
		b.full = now
	}
	b.full = b.full.Add(l.every)
	// Failures charged while refused cannot push the instant further than
	// one burst ahead: the wait stays at most Every.
	if limit := now.Add(l.burst); b.full.After(limit) {
		b.full = limit
	}
	l.lru.MoveToFront(e)
}

// Len is the number of addresses tracked now.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

func (l *Limiter) drop(e *list.Element) {
	delete(l.byKey, e.Value.(*bucket).key)
	l.lru.Remove(e)
}

// key is the address a bucket is kept for: the IP without the port, an
// IPv4-mapped IPv6 address as IPv4, other IPv6 addresses as their /64.
func key(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			return addr
		}
		ip = ap.Addr()
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64) // cannot fail: 64 bits fit an IPv6 address
		return p.String()
	}
	return ip.String()
}
