package host_test

import (
	"github.com/hothost/hothost/client"
	"strings"
	"testing"
	"time"
)

// A push reaches every live session of its player, after the commit, and
// the sender's own pushes arrive on its Pushes channel while it reads
// replies.
func TestPushReachesEverySessionOfThePlayer(t *testing.T) {
	t.Parallel()
	p, _ := startHost(t)
	ada, bob1, bob2 := dial(t, p, 31), dial(t, p, 32), dial(t, p, 32)
	if r := do(t, ada, "tell 32 hello bob"); !r.OK || r.Text != "told 32" {
		t.Fatalf("tell: %v", r)
	}
	for i, c := range []*client.Conn{bob1, bob2} {
		got, err := c.NextPush(time.Minute)
		if err != nil || got != "from 31: hello bob" {
			t.Fatalf("bob session %d: push %q, %v", i, got, err)
		}
	}
	// Pushes come in the order sent.
	do(t, ada, "tell 32 one")
	do(t, ada, "tell 32 two")
	a, _ := bob1.NextPush(time.Minute)
	b, _ := bob1.NextPush(time.Minute)
	if a != "from 31: one" || b != "from 31: two" {
		t.Fatalf("order: %q then %q", a, b)
	}
	// A push to yourself may come before or after the reply: a push read
	// while waiting for a reply is kept for Pushes, which NextPush drains first.
	if r := do(t, ada, "tell 31 note to self"); !r.OK {
		t.Fatal(r)
	}
	if got, err := ada.NextPush(time.Minute); err != nil || !strings.HasSuffix(got, "note to self") {
		t.Fatalf("self push %q, %v", got, err)
	}
	// A request that fails sends nothing.
	if r := do(t, ada, "tell 32"); r.OK || r.Code != "usage" {
		t.Fatalf("tell without text: %v", r)
	}
	if r := do(t, bob1, "ping"); !r.OK {
		t.Fatal(r)
	}
	if n := len(bob1.Pushes()); n != 0 {
		t.Fatalf("%d pushes from a failed request", n)
	}
}
