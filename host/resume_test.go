package host_test

import (
	"testing"
)

// A request retried with its tag, on a new connection after a reconnect,
// is answered with the reply it had and not run again.
func TestRetriedTagIsAnsweredNotRunAgain(t *testing.T) {
	t.Parallel()
	p, _ := startHost(t)
	c1 := dial(t, p, 5)
	first, err := c1.DoTag("retry-1", "work")
	if err != nil || !first.OK || first.Tag != "retry-1" {
		t.Fatalf("work: %v, %v", first, err)
	}
	before := do(t, c1, "balance")
	c1.Close()

	c2 := dial(t, p, 5)
	again, err := c2.DoTag("retry-1", "work")
	if err != nil || again != first {
		t.Fatalf("retried tag answered %+v, %v; want the first reply %+v", again, err, first)
	}
	if after := do(t, c2, "balance"); after.Text != before.Text {
		t.Fatalf("balance %q after the retry, %q before: the work ran twice", after.Text, before.Text)
	}
	// A new tag runs.
	if r := do(t, c2, "work"); !r.OK || r.Text == first.Text {
		t.Fatalf("new work: %v", r)
	}
	// Another player's tag of the same name is another request.
	c3 := dial(t, p, 6)
	if r, err := c3.DoTag("retry-1", "work"); err != nil || !r.OK {
		t.Fatalf("player 6's retry-1: %v, %v", r, err)
	}
	if b1, b2 := do(t, c3, "balance"), do(t, c2, "balance"); b1.Text == "" || b2.Text == "" {
		t.Fatalf("balances %q %q", b1.Text, b2.Text)
	}
}
