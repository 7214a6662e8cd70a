package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/hothost/hothost/client"
)

// The host's defaults these checks rely on (cmd/hothost has no flags for
// them): 1024-byte frames, 5 bad frames per session, 10000 connections.
const (
	maxFrame     = 1024
	maxBadFrames = 5
	maxConns     = 10_000
)

// abuse sends what a broken or hostile client sends while the load runs:
// nothing it does may cost the well-behaved clients a single request.
func (e *env) abuse() error {
	const sc = "client abuse"
	_, p, a, err := e.serve("abuse", false)
	if err != nil {
		return err
	}
	lc := e.loadCfg(p, a)
	lc.Players = e.conns // one player per connection: the load holds its slots through the flood
	l, err := e.warmLoad(lc, 200)
	if err != nil {
		return err
	}
	defer l.Stop()

	// Oversized frame: refused, and the session goes on.
	c, err := client.Dial(p.Addr, 5*time.Second)
	if err != nil {
		return err
	}
	c.Timeout = 10 * time.Second
	c.Write(append(bytes.Repeat([]byte("w"), 100*maxFrame), '\n'))
	r1, err1 := c.Read()
	r2, err2 := c.Do("ping")
	c.Close()
	e.check(sc, "oversized frame refused, session goes on", err1 == nil && r1.Code == "frame" && err2 == nil && r2.OK,
		"%d bytes -> %q; then ping -> %q", 100*maxFrame+1, r1.String(), r2.String())

	// Garbage: each bad line answered, the session ended after the limit.
	gc, err := net.DialTimeout("tcp", p.Addr, 5*time.Second)
	if err != nil {
		return err
	}
	gc.SetDeadline(time.Now().Add(10 * time.Second))
	for range 2 * maxBadFrames {
		b := make([]byte, 64)
		rand.Read(b)
		b = bytes.ReplaceAll(b, []byte("\n"), []byte{0})
		b[0] = 0 // a control byte: never a valid frame
		gc.Write(append(b, '\n'))
	}
	frames, other, closed := 0, 0, false
	br := bufio.NewReader(gc)
	for range 2 * maxBadFrames {
		line, err := br.ReadString('\n')
		if err != nil {
			closed = errors.Is(err, io.EOF) || strings.Contains(err.Error(), "reset")
			break
		}
		if strings.HasPrefix(line, "err frame") {
			frames++
		} else {
			other++
		}
	}
	gc.Close()
	e.check(sc, "garbage answered, session closed at the limit", frames == maxBadFrames && other == 0 && closed,
		"%d lines of random bytes -> %d 'err frame', %d other, closed: %t", 2*maxBadFrames, frames, other, closed)

	// Half-open: connections that send half a line, or nothing, and never read.
	const halfOpen = 300
	tk, err := p.Ticket(4)
	if err != nil {
		return err
	}
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range halfOpen {
		hc, err := net.DialTimeout("tcp", p.Addr, 5*time.Second)
		if err != nil {
			return fmt.Errorf("half-open %d: %w", i, err)
		}
		if i%2 == 0 { // half a login line: the ticket never ends
			hc.Write([]byte("login 4 " + tk[:len(tk)/2]))
		}
		held = append(held, hc)
	}
	before := l.Acked()
	if err := waitAcks(e.ctx, l, before+2000, 30*time.Second); err != nil {
		return fmt.Errorf("with %d half-open connections: %w", halfOpen, err)
	}
	st, _ := status(e.ctx, p)
	e.check(sc, "half-open connections cost nothing", l.Failed() == 0 && st.Connections >= halfOpen,
		"%d held (host counts %d connections); %d replies meanwhile, %d failed", halfOpen, st.Connections, l.Acked()-before, l.Failed())
	for _, c := range held {
		c.Close()
	}
	held = nil

	// Flood: fill every connection slot; the next ones are refused with
	// `err full`, the load keeps its connections, a slot freed is usable.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ = status(e.ctx, p)
		if st.Connections <= e.conns || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // the host sees the closes; bounded
	}
	free := maxConns - st.Connections
	const tail = 100
	n := free + tail/2
	t0 := time.Now()
	for i := range n {
		fc, err := net.DialTimeout("tcp", p.Addr, 5*time.Second)
		if err != nil {
			return fmt.Errorf("flood dial %d of %d: %w", i, n, err)
		}
		held = append(held, fc)
	}
	// The refused ones were answered and closed; the accepted ones wait:
	// read the tail, around the limit, concurrently.
	type answer struct {
		i    int
		line string
	}
	answers := make(chan answer, tail)
	for i := n - tail; i < n; i++ {
		go func() {
			held[i].SetReadDeadline(time.Now().Add(2 * time.Second))
			line, _ := bufio.NewReader(held[i]).ReadString('\n')
			answers <- answer{i, strings.TrimSpace(line)}
		}()
	}
	full, firstFull := 0, n
	var fullMsg string
	for range tail {
		a := <-answers
		if strings.HasPrefix(a.line, "err full") {
			full++
			if a.i < firstFull {
				firstFull, fullMsg = a.i, a.line
			}
		}
	}
	before = l.Acked()
	if err := waitAcks(e.ctx, l, before+1000, 30*time.Second); err != nil {
		return fmt.Errorf("during the flood: %w", err)
	}
	for _, c := range held {
		c.Close()
	}
	held = nil
	var pingErr error
	deadline = time.Now().Add(10 * time.Second)
	for {
		var r client.Reply
		c, err := client.Dial(p.Addr, 5*time.Second)
		if err == nil {
			r, err = c.Do("ping")
			c.Close()
			if err == nil && !r.OK {
				err = errors.New(r.String())
			}
		}
		if pingErr = err; err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the host frees slots as it sees the closes; bounded
	}
	e.check(sc, "connection flood up to the limit", full == n-free && firstFull == free && pingErr == nil && l.Failed() == 0,
		"%d dialed in %v with %d slots free: #%d on refused (%d in all): %q; load meanwhile %d replies, %d failed; a slot freed: %s",
		n, time.Since(t0).Round(time.Millisecond), free, firstFull, full, fullMsg, l.Acked()-before, l.Failed(), errOr(pingErr))
	e.verify(sc, l, p.Addr)
	return nil
}
