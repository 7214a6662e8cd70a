package host_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/hothost/hothost/host"
	"github.com/hothost/hothost/internal/hostproc"
)

// The WebSocket tests run the real host with -ws-listen and talk to it with
// a real WebSocket client; browser_test.go drives the page in Chromium.

var wsAddrRE = regexp.MustCompile(`msg="serving browsers" .*websocket=(\S+)`)

// wsAddr is the address of p's WebSocket listener, from the line the host
// logs when it binds it (before its admin API answers; the log reaches
// this process through a pipe, so it is polled).
func wsAddr(t *testing.T, p *hostproc.Proc) string {
	t.Helper()
	for start := time.Now(); time.Since(start) < time.Minute; time.Sleep(10 * time.Millisecond) {
		if m := wsAddrRE.FindStringSubmatch(p.Log()); m != nil {
			return m[1]
		}
	}
	t.Fatalf("the host never logged its WebSocket address:\n%s", p.Log())
	return ""
}

// wsConn is a test's WebSocket session; every call is bounded by its context.
type wsConn struct {
	t   *testing.T
	c   *websocket.Conn
	ctx context.Context
}

func dialWS(t *testing.T, addr string, header http.Header) (*wsConn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.CloseNow() })
	return &wsConn{t: t, c: c, ctx: ctx}, nil
}

func mustDialWS(t *testing.T, addr string) *wsConn {
	t.Helper()
	c, err := dialWS(t, addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *wsConn) send(typ websocket.MessageType, msg string) {
	c.t.Helper()
	if err := c.c.Write(c.ctx, typ, []byte(msg)); err != nil {
		c.t.Fatalf("send %.40q: %v", msg, err)
	}
}

func (c *wsConn) read() (string, error) {
	typ, b, err := c.c.Read(c.ctx)
	if err == nil && typ != websocket.MessageText {
		err = fmt.Errorf("a %v message from the host, want text", typ)
	}
	return string(b), err
}

// do sends a request and returns the reply.
func (c *wsConn) do(msg string) string {
	c.t.Helper()
	c.send(websocket.MessageText, msg)
	r, err := c.read()
	if err != nil {
		c.t.Fatalf("%.40q: %v", msg, err)
	}
	return r
}

func TestWSSession(t *testing.T) {
	t.Parallel()
	p, _ := startHost(t, "-ws-listen", "127.0.0.1:0")
	addr := wsAddr(t, p)
	page, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if page.StatusCode != 200 || !strings.Contains(string(body), `<script src="app.js"`) || !strings.Contains(page.Header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("GET /: %s %v\n%s", page.Status, page.Header, body)
	}

	c := mustDialWS(t, addr)
	tk, err := p.Ticket(42)
	if err != nil {
		t.Fatal(err)
	}
	tk7, _ := p.Ticket(7)
	for _, s := range []struct{ send, want string }{
		{"work", "err nologin "},
		{"login 42", "err auth "},
		{"login 42 " + tk7, "err auth "},
		{"login 42 " + tk, "ok "},
		{"work", "ok coins 10 level 0 v1"},
		{"buy potion", "ok bought potion for 5 coins 5"},
		{"ping", "ok pong"},
		{"ping " + strings.Repeat("x", 1024-len("ping ")), "ok pong"}, // MaxFrame exactly
	} {
		if r := c.do(s.send); !strings.HasPrefix(r, s.want) {
			t.Fatalf("%.20q: %q, want prefix %q", s.send, r, s.want)
		}
	}
	// Bad frames are answered and counted as on TCP; the session goes on
	// until the fifth.
	for _, b := range []struct {
		typ       websocket.MessageType
		msg, want string
	}{
		{websocket.MessageText, strings.Repeat("x", 5000), "err frame bad frame: longer than 1024 bytes"},
		{websocket.MessageText, "\xff\xfe", "err frame bad frame: not UTF-8"},
		{websocket.MessageBinary, "work", "err frame bad frame: a binary message"},
		{websocket.MessageText, "work\nwork", "err frame bad frame: control byte 0x0a"},
	} {
		c.send(b.typ, b.msg)
		if r, err := c.read(); err != nil || !strings.HasPrefix(r, b.want) {
			t.Fatalf("bad frame %.20q: %q %v, want prefix %q", b.msg, r, err, b.want)
		}
	}
	if r := c.do("work"); r != "ok coins 15 level 0 v1" {
		t.Fatalf("work after four bad frames: %q", r)
	}
	// One player, one state, whichever the protocol.
	if r := do(t, dial(t, p, 42), "balance"); r.String() != "ok coins 15 xp 20 level 0" {
		t.Fatalf("player 42 over TCP: %s", r)
	}
	if r := c.do(""); r != "err frame bad frame: empty; 5 bad frames, closing" {
		t.Fatalf("fifth bad frame: %q", r)
	}
	if r, err := c.read(); err == nil {
		t.Fatalf("session open after 5 bad frames: %q", r)
	}

	// A page of another origin cannot open a session (a browser sends its
	// page's origin; the ticket is not the only guard).
	if _, err := dialWS(t, addr, http.Header{"Origin": {"http://evil.example"}}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("foreign origin: %v, want 403", err)
	}

	// A clean stop drains WebSocket sessions like TCP ones.
	open := mustDialWS(t, addr)
	if r := open.do("login 42 " + tk); !strings.HasPrefix(r, "ok ") {
		t.Fatalf("login: %q", r)
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("stop with a WebSocket session open: %v", err)
	}
	if r, err := open.read(); err == nil {
		t.Fatalf("session open after the host stopped: %q", r)
	}
}

func TestWSIdleAndConnectionLimit(t *testing.T) {
	t.Parallel()
	t.Run("idle", func(t *testing.T) {
		p, _ := startHost(t, "-ws-listen", "127.0.0.1:0", "-idle-timeout", "300ms")
		c := mustDialWS(t, wsAddr(t, p))
		if r, err := c.read(); err != nil || r != "err idle no request for 300ms, closing" {
			t.Fatalf("an idle client got %q %v, want err idle", r, err)
		}
		if r, err := c.read(); err == nil {
			t.Fatalf("session open after the idle reply: %q", r)
		}
	})
	t.Run("limit", func(t *testing.T) {
		p, _ := startHost(t, "-ws-listen", "127.0.0.1:0", "-max-conns", "1")
		addr := wsAddr(t, p)
		a := mustDialWS(t, addr)
		if r := a.do("ping"); r != "ok pong" {
			t.Fatalf("first connection: %q", r)
		}
		b := mustDialWS(t, addr)
		if r, err := b.read(); err != nil || !strings.HasPrefix(r, "err full too many connections (1)") {
			t.Fatalf("second connection: %q %v, want err full", r, err)
		}
		if r, err := b.read(); err == nil {
			t.Fatalf("refused connection still open: %q", r)
		}
		if r := a.do("ping"); r != "ok pong" {
			t.Fatalf("the connection within the limit: %q", r)
		}
	})
}

// Browsers play through a web page the host serves beside the TCP
// listener: with these options, http://127.0.0.1:7071/.
func ExampleOptions_webSocket() {
	opts := host.Options{
		Listen:   "127.0.0.1:7070", // the line protocol: nc, the Go client, the load generator
		WSListen: "127.0.0.1:7071", // the page at /, the same protocol over a WebSocket at /ws
	}
	fmt.Println(opts.WSListen)
	// Output: 127.0.0.1:7071
}
