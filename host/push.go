package host

import (
	"sync"
	"time"
)

// Pushes: a handler's abi.Call.Tell queues a message for any player; once
// the transaction committed, the host hands it to every live session of
// that player. A session writes its pushes from a goroutine of its own,
// started while it has some, so a slow reader never holds up the lane or
// the sender; its queue is bounded and drops the oldest push when full
// (counted in hothost_pushes_dropped_total).

// pushQueueLen is how many undelivered pushes a session keeps.
const pushQueueLen = 64

// pushWriteTimeout bounds one push write to a client that does not read.
const pushWriteTimeout = 10 * time.Second

// sessionsByPlayer is the live sessions of each logged-in player.
type sessionsByPlayer struct {
	mu sync.RWMutex
	m  map[uint64][]*session
}

func (sp *sessionsByPlayer) add(player uint64, s *session) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.m == nil {
		sp.m = map[uint64][]*session{}
	}
	sp.m[player] = append(sp.m[player], s)
}

func (sp *sessionsByPlayer) remove(player uint64, s *session) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	list := sp.m[player]
	for i, x := range list {
		if x == s {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(sp.m, player)
	} else {
		sp.m[player] = list
	}
}

// deliver queues the pushes a committed transaction sent.
func (h *Host[T, C]) deliver(pushes []pushMsg) {
	h.players.mu.RLock()
	defer h.players.mu.RUnlock()
	for _, p := range pushes {
		for _, s := range h.players.m[p.player] {
			if s.queuePush(p.text) {
				h.metrics.pushDropped.Inc()
			}
			h.metrics.pushes.Inc()
		}
	}
}

type pushMsg struct {
	player uint64
	text   string
}

// pushQueue is a session's undelivered pushes.
type pushQueue struct {
	mu      sync.Mutex
	q       []string
	writing bool // a writer goroutine runs
}

// queuePush adds text to s's pushes and starts their writer if none runs;
// it reports whether the oldest push was dropped to make room.
func (s *session) queuePush(text string) (dropped bool) {
	s.push.mu.Lock()
	defer s.push.mu.Unlock()
	if len(s.push.q) >= pushQueueLen {
		s.push.q = s.push.q[1:]
		dropped = true
	}
	s.push.q = append(s.push.q, text)
	if !s.push.writing {
		s.push.writing = true
		go s.writePushes()
	}
	return dropped
}

// writePushes writes queued pushes until none is left, in order, each
// under the session's write lock so it never splits a reply.
func (s *session) writePushes() {
	for {
		s.push.mu.Lock()
		q := s.push.q
		s.push.q = nil
		if len(q) == 0 {
			s.push.writing = false
			s.push.mu.Unlock()
			return
		}
		s.push.mu.Unlock()
		s.wmu.Lock()
		for _, text := range q {
			s.conn.SetWriteDeadline(time.Now().Add(pushWriteTimeout))
			if s.codec.WritePush(text) != nil {
				break // the session's own read or write will see the broken connection
			}
		}
		s.conn.SetWriteDeadline(time.Time{})
		s.wmu.Unlock()
	}
}
