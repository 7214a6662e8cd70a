package supervisor_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/hothost/hothost/supervisor"
)

// A program that is its own worker, the way hothost is: started by a
// person it supervises; started by its supervisor (IsWorker) it serves.
// Here the worker is this test binary, which answers "<text>" with
// "v1 <pid> <text> <handovers>". A client is served, the worker is
// replaced (Upgrade), and the same connection is served by the new one.
func Example() {
	exe, _ := os.Executable()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	s, err := supervisor.New(supervisor.Config{
		Listen:     "127.0.0.1:0",
		Binary:     exe,
		StatusFile: filepath.Join(dir, "status.json"),
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()

	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	say := func(text string) (words []string) {
		fmt.Fprintln(conn, text)
		line, _ := r.ReadString('\n')
		return strings.Fields(line) // version, pid, text, handovers
	}
	w := say("hello")
	fmt.Println(w[0], w[2], "after", w[3], "handovers")

	if err := s.Upgrade(""); err != nil { // the same binary again
		fmt.Println(err)
		return
	}
	for w[3] == "0" { // the old worker answers until it drains
		w = say("again")
	}
	fmt.Println(w[0], w[2], "after", w[3], "handovers")

	stop()
	<-served
	st, _ := supervisor.ReadStatusFile(filepath.Join(dir, "status.json"))
	fmt.Println("workers started:", st.Starts, "upgrade:", st.LastUpgrade.State)
	// Output:
	// v1 hello after 0 handovers
	// v1 again after 1 handovers
	// workers started: 2 upgrade: done
}

// The worker side: attach to the supervisor, say ready once able to serve,
// serve what the listener hands over, and on Drain stop taking requests and
// return (connections closed after Drain are released to the next worker,
// not ended for the client).
func ExampleAttach() {
	if !supervisor.IsWorker() {
		fmt.Println("not started by a supervisor")
		return
	}
	w, err := supervisor.Attach()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer w.Close()
	ln := w.Listener()
	go func() {
		<-w.Drain()
		ln.Close() // and finish the requests in flight
	}()
	if err := w.Ready(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue // a bad message from the supervisor, named in err
		}
		conn := c.(*supervisor.Conn)
		go func() {
			defer conn.Close()
			fmt.Fprintf(conn, "connection %d, served by %d workers before\n", conn.ID(), conn.Handovers())
		}()
	}
	// Output: not started by a supervisor
}
