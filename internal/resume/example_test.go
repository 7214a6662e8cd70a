package resume_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/hothost/hothost/internal/resume"
)

// A worker reads a request, and dies before answering it; the next
// worker, given the same connection, finds the request in the session
// table and answers it. The client sees one answer.
func Example() {
	dir, _ := os.MkdirTemp("", "resume-example-")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "game.sessions")
	noPlayers := func(uint64) (uint32, bool) { return 0, false }

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	client, _ := net.Dial("tcp", ln.Addr().String())
	defer client.Close()
	conn, _ := ln.Accept() // the supervisor keeps this one across workers
	defer conn.Close()
	fmt.Fprintf(client, "work\n")

	first, _, _ := resume.Open(path, 16, noPlayers)
	s, _ := first.Attach(conn, 42, 1024)
	line, _, _ := s.Next()
	fmt.Printf("worker 1 read %q and died\n", line)

	second, rep, _ := resume.Open(path, 16, noPlayers)
	defer second.Close()
	s2, _ := second.Attach(conn, 42, 1024)
	line, end, _ := s2.Next()
	fmt.Printf("worker 2 found %d waiting session, resumed %v, read %q\n", rep.Live, s2.Resumed(), line)
	s2.Write([]byte("ok coins 10\n"), end)

	reply, _ := bufio.NewReader(client).ReadString('\n')
	fmt.Printf("client got %q", reply)
	// Output:
	// worker 1 read "work" and died
	// worker 2 found 1 waiting session, resumed true, read "work"
	// client got "ok coins 10\n"
}
