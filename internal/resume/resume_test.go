package resume

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pair is a real TCP connection: the server side a worker serves, the
// client side the test plays the player on.
func pair(t *testing.T) (server *net.TCPConn, client *bufio.ReadWriter, cc net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cc, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close(); sc.Close() })
	return sc.(*net.TCPConn), bufio.NewReadWriter(bufio.NewReader(cc), bufio.NewWriter(cc)), cc
}

func open(t *testing.T, path string, commits map[uint64]uint32) (*Table, *Report) {
	t.Helper()
	tab, rep, err := Open(path, 8, func(p uint64) (uint32, bool) { c, ok := commits[p]; return c, ok })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tab.Close() })
	return tab, rep
}

func send(t *testing.T, c *bufio.ReadWriter, s string) {
	t.Helper()
	if _, err := c.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
}

func next(t *testing.T, s *Stream, want string) uint64 {
	t.Helper()
	line, end, err := s.Next()
	if err != nil || string(line) != want {
		t.Fatalf("Next = %q, %v; want %q", line, err, want)
	}
	return end
}

func expect(t *testing.T, c *bufio.ReadWriter, want ...string) {
	t.Helper()
	for _, w := range want {
		got, err := c.ReadString('\n')
		if err != nil || got != w+"\n" {
			t.Fatalf("client read %q, %v; want %q", got, err, w)
		}
	}
}

// A worker that read two requests and answered one dies; the next one
// answers the other from the ring, and the client sees each answer once.
func TestResumeAnswersWhatWasReadButNotAnswered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sessions")
	conn, client, _ := pair(t)
	tab, _ := open(t, path, nil)
	s, err := tab.Attach(conn, 7, 64)
	if err != nil {
		t.Fatal(err)
	}
	send(t, client, "work\nbuy sword\n")
	end := next(t, s, "work")
	if err := s.Write([]byte("ok 1\n"), end); err != nil {
		t.Fatal(err)
	}
	next(t, s, "buy sword") // read, then the worker dies: no answer
	expect(t, client, "ok 1")

	tab2, rep := open(t, path, nil)
	if rep.Live != 1 {
		t.Fatalf("report %+v: want 1 live session", rep)
	}
	s2, err := tab2.Attach(conn, 7, 64)
	if err != nil {
		t.Fatal(err)
	}
	if !s2.Resumed() {
		t.Fatal("session not resumed")
	}
	end = next(t, s2, "buy sword")
	if err := s2.Write([]byte("ok 2\n"), end); err != nil {
		t.Fatal(err)
	}
	send(t, client, "balance\n")
	end = next(t, s2, "balance")
	s2.Write([]byte("ok 3\n"), end)
	expect(t, client, "ok 2", "ok 3")
}

// A write the dead worker began is finished by the next one, from the
// output slot, and counts as the answer to its request.
func TestResumeFinishesACutWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sessions")
	conn, client, _ := pair(t)
	tab, _ := open(t, path, nil)
	s, _ := tab.Attach(conn, 9, 64)
	send(t, client, "work\n")
	end := next(t, s, "work")
	// What Write does up to the socket write, and half of that write:
	// then the process dies.
	reply := []byte("ok coins=12\n")
	copy(s.out, reply)
	s.h.OutStart, s.h.OutReq, s.h.OutN = s.written, end, uint32(len(reply))
	if _, err := conn.Write(reply[:5]); err != nil {
		t.Fatal(err)
	}

	tab2, _ := open(t, path, nil)
	s2, err := tab2.Attach(conn, 9, 64)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, client, "ok coins=12")
	send(t, client, "balance\n")
	next(t, s2, "balance") // work counts as answered: it is not read again
}

// A reply recorded in a transaction that committed is there for the next
// worker; one whose transaction never committed is dropped at Open.
func TestRecordsOfCommittedTransactionsOnly(t *testing.T) {
	for _, committed := range []bool{true, false} {
		path := filepath.Join(t.TempDir(), "s.sessions")
		conn, client, _ := pair(t)
		tab, _ := open(t, path, nil)
		s, _ := tab.Attach(conn, 11, 64)
		s.SetPlayer(42)
		send(t, client, "#a1 work\n")
		end := next(t, s, "#a1 work")
		s.Record(42, 5, end, "a1", []byte("#a1 ok coins=5\n"))
		commits := map[uint64]uint32{42: 4} // the commit did not happen
		if committed {
			commits[42] = 5
		}
		tab2, rep := open(t, path, commits)
		s2, err := tab2.Attach(conn, 11, 64)
		if err != nil {
			t.Fatal(err)
		}
		end2 := next(t, s2, "#a1 work")
		line, kept := s2.Kept(end2)
		_, tagged := tab2.FindTag(42, "a1")
		if kept != committed || tagged != committed || committed && string(line) != "#a1 ok coins=5\n" {
			t.Fatalf("committed=%v: Kept = %q, %v; FindTag %v (report %+v)", committed, line, kept, tagged, rep)
		}
		if want := map[bool]int{true: 0, false: 1}[committed]; rep.Dropped != want {
			t.Fatalf("committed=%v: dropped %d records, want %d", committed, rep.Dropped, want)
		}
	}
}

// A record with a poked byte fails its checksum and is dropped.
func TestTornRecordIsDropped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sessions")
	conn, _, _ := pair(t)
	tab, _ := open(t, path, nil)
	s, _ := tab.Attach(conn, 12, 64)
	s.Record(42, 1, 10, "t", []byte("#t ok\n"))
	s.t.rec(s.i, 0).Reply[1] ^= 0xff
	_, rep := open(t, path, map[uint64]uint32{42: 1})
	if rep.Dropped != 1 {
		t.Fatalf("dropped %d, want the torn record", rep.Dropped)
	}
}

// A request that two workers started and neither answered is refused the
// third time: Begin counts the workers.
func TestBeginCountsWorkers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sessions")
	conn, client, _ := pair(t)
	send(t, client, "crash\n")
	for worker := range 3 {
		tab, _ := open(t, path, nil)
		s, err := tab.Attach(conn, 13, 64)
		if err != nil {
			t.Fatal(err)
		}
		end := next(t, s, "crash")
		if got := s.Begin(end); got != worker {
			t.Fatalf("worker %d: Begin says %d before", worker, got)
		}
	}
}

// Tags are found from another connection of the player: the client
// reconnected and retries.
func TestFindTagFromAnotherConnection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sessions")
	tab, _ := open(t, path, nil)
	conn, _, _ := pair(t)
	s, _ := tab.Attach(conn, 0, 64)
	s.SetPlayer(5)
	s.Record(5, 1, 10, "x.1", []byte("#x.1 ok\n"))
	s.Close()
	if line, ok := tab.FindTag(5, "x.1"); !ok || string(line) != "#x.1 ok\n" {
		t.Fatalf("FindTag = %q, %v", line, ok)
	}
	if _, ok := tab.FindTag(6, "x.1"); ok {
		t.Fatal("another player's tag found")
	}
}

// A session keeps its records newest replies: the oldest tag's record is
// reused, and that tag is no longer found, the others are.
func TestFindTagAfterRecordsAreReused(t *testing.T) {
	tab, _ := open(t, filepath.Join(t.TempDir(), "s.sessions"), nil)
	conn, _, _ := pair(t)
	s, _ := tab.Attach(conn, 0, 64)
	s.SetPlayer(5)
	for k := range records + 1 {
		tag := fmt.Sprintf("r.%d", k)
		s.Record(5, uint32(k+1), uint64(k+1), tag, []byte("#"+tag+" ok\n"))
	}
	for k := range records + 1 {
		tag := fmt.Sprintf("r.%d", k)
		line, ok := tab.FindTag(5, tag)
		if want := k > 0; ok != want || ok && string(line) != "#"+tag+" ok\n" {
			t.Errorf("FindTag(%s) = %q, %v; want found %v", tag, line, ok, want)
		}
	}
}

// A player's ended sessions beyond KeepClosed are freed when the next one
// ends, the oldest first: their tags are no longer found, the newest ones'
// are, and FindTag never scans more than that.
func TestOldClosedSessionsAreFreed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sessions")
	tab, _ := open(t, path, nil)
	const sessions = KeepClosed + 4
	for k := range sessions {
		conn, _, _ := pair(t)
		s, err := tab.Attach(conn, 0, 64)
		if err != nil {
			t.Fatalf("session %d: %v", k, err)
		}
		s.SetPlayer(5)
		tag := fmt.Sprintf("t.%d", k)
		s.Record(5, uint32(k+1), 10, tag, []byte("#"+tag+" ok\n"))
		s.Close()
	}
	for k := range sessions {
		tag := fmt.Sprintf("t.%d", k)
		line, ok := tab.FindTag(5, tag)
		if want := k >= sessions-KeepClosed; ok != want || ok && string(line) != "#"+tag+" ok\n" {
			t.Errorf("FindTag(%s) = %q, %v; want found %v", tag, line, ok, want)
		}
	}
	if n := len(tab.shard(5).m[5]); n != KeepClosed {
		t.Errorf("player 5 has %d sessions linked, want %d", n, KeepClosed)
	}
}

// A line longer than the max is refused whole, and the next line is read.
func TestTooLongLine(t *testing.T) {
	tab, _ := open(t, filepath.Join(t.TempDir(), "s.sessions"), nil)
	conn, client, _ := pair(t)
	s, _ := tab.Attach(conn, 0, 16)
	send(t, client, strings.Repeat("x", 5000)+"\nping\n")
	if _, end, err := s.Next(); !errors.Is(err, ErrTooLong) || end != 5001 {
		t.Fatalf("Next = %d, %v; want ErrTooLong at 5001", end, err)
	}
	s.Write([]byte("err frame\n"), 5001)
	next(t, s, "ping")
}

// A table file of another shape or with a poked header is replaced, and
// Open says why.
func TestInvalidTableIsReplaced(t *testing.T) {
	for _, tc := range []struct {
		name string
		poke func(b []byte)
		want string
	}{
		{"magic", func(b []byte) { b[0] = 'X' }, "magic"},
		{"sizes", func(b []byte) { b[12] ^= 1 }, "sessions of"},
		{"checksum", func(b []byte) { b[25] ^= 1 }, "checksum"},
	} {
		path := filepath.Join(t.TempDir(), "s.sessions")
		tab, _ := open(t, path, nil)
		tab.Close()
		b, _ := os.ReadFile(path)
		tc.poke(b)
		os.WriteFile(path, b, 0o600)
		_, rep := open(t, path, nil)
		if !errors.Is(rep.Invalid, ErrInvalid) || !strings.Contains(rep.Invalid.Error(), tc.want) || !rep.Fresh {
			t.Fatalf("%s: report %+v, want a fresh table and an error naming %q", tc.name, rep, tc.want)
		}
	}
}

// BenchmarkFindTag is a tagged request's look-up of its tag when it is not
// a retry (the common case: every record is read and none matches), for a
// player with a live session and KeepClosed ended ones, each holding
// records records of other tags. The players are many enough that their
// sessions' pages are not all in cache, as on a server with many players.
func BenchmarkFindTag(b *testing.B) {
	const players = 512
	tab, _, err := Open(filepath.Join(b.TempDir(), "s.sessions"), players*(KeepClosed+1),
		func(uint64) (uint32, bool) { return 1 << 30, true })
	if err != nil {
		b.Fatal(err)
	}
	defer tab.Close()
	for p := uint64(1); p <= players; p++ {
		for k := range KeepClosed + 1 {
			c, _ := net.Pipe()
			s, err := tab.Attach(c, 0, 64)
			if err != nil {
				b.Fatal(err)
			}
			s.SetPlayer(p)
			for r := range records {
				tag := fmt.Sprintf("p%d.s%d.r%d", p, k, r)
				s.Record(p, 1, uint64(r+1), tag, []byte("#"+tag+" ok\n"))
			}
			if k < KeepClosed {
				s.Close()
			}
		}
	}
	b.ResetTimer()
	for i := range b.N {
		if _, ok := tab.FindTag(uint64(i*7919%players+1), "new.1"); ok {
			b.Fatal("a tag never recorded was found")
		}
	}
}
