// Package client is a Go client for hothost's line protocol: one request per
// line, answered by `ok ...` or `err <code> <message>`. The demo, the load
// generator and the end-to-end tests use it; a person can use nc instead.
// A session starts with LoginTicket (`login <id> <ticket>`), or with Login
// on a host that runs without tickets.
//
// Every request Do sends is tagged (`#3f9c2a1b.17 work`) and its reply
// carries the tag back. The server keeps the replies of tagged requests
// that changed state: a request retried with its tag (DoTag, after a
// reconnect) is answered with the kept reply and not run twice.
//
// A Conn is not safe for concurrent use: the protocol answers one request
// at a time per connection, in order.
package client

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Reply is one answer from the server.
type Reply struct {
	OK   bool
	Code string // the error code when !OK ("busy", "funds", "internal", ...)
	Text string // the rest of the line
	Tag  string // the request's tag, without its '#'
}

func (r Reply) String() string {
	if r.OK {
		return "ok " + r.Text
	}
	return "err " + r.Code + " " + r.Text
}

// Field returns the word after key in the reply text ("coins 30 level 1":
// Field("coins") is "30").
func (r Reply) Field(key string) (string, bool) {
	w := strings.Fields(r.Text)
	for i := 0; i+1 < len(w); i++ {
		if w[i] == key {
			return w[i+1], true
		}
	}
	return "", false
}

// Int is Field parsed as an integer.
func (r Reply) Int(key string) (int64, bool) {
	s, ok := r.Field(key)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// ErrProtocol means the server sent a line that is not a reply.
var ErrProtocol = errors.New("client: not a protocol reply")

// Conn is one client connection.
type Conn struct {
	c       net.Conn
	r       *bufio.Reader
	Timeout time.Duration // per request; 0 means none
	pushes  chan string
	// DroppedPushes counts pushes that arrived while Pushes was full.
	DroppedPushes int
	tagBase       string // random per connection: tags stay unique to the player across reconnects
	seq           uint64
	lastTag       string
}

// pushBuffer is how many pushes Pushes holds before the oldest are dropped.
const pushBuffer = 256

// Pushes delivers the server's pushes (`push <text>` lines, the text
// only) that arrived while a reply was read (Do, Read) or NextPush waited.
// When nobody takes them, the newest beyond its buffer are dropped and
// counted in DroppedPushes.
func (c *Conn) Pushes() <-chan string { return c.pushes }

// NextPush returns the next push, reading from the connection for at most
// timeout if none has arrived yet. Call it only while no request is
// outstanding.
func (c *Conn) NextPush(timeout time.Duration) (string, error) {
	select {
	case p := <-c.pushes:
		return p, nil
	default:
	}
	c.c.SetReadDeadline(time.Now().Add(timeout))
	defer c.c.SetReadDeadline(time.Time{})
	s, err := c.r.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("client: wait for a push: %w", err)
	}
	s = strings.TrimRight(s, "\r\n")
	if text, ok := strings.CutPrefix(s, "push "); ok {
		return text, nil
	}
	return "", fmt.Errorf("%w: a reply %q with no request outstanding", ErrProtocol, s)
}

// Dial connects to a hothost at addr.
func Dial(addr string, timeout time.Duration) (*Conn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", addr, err)
	}
	return &Conn{c: c, r: bufio.NewReader(c), Timeout: 10 * time.Second, pushes: make(chan string, pushBuffer),
		tagBase: fmt.Sprintf("%08x", rand.Uint32())}, nil
}

// Do sends one request line, tagged with the connection's next tag, and
// reads its reply.
func (c *Conn) Do(line string) (Reply, error) {
	c.seq++
	return c.DoTag(c.tagBase+"."+strconv.FormatUint(c.seq, 10), line)
}

// LastTag is the tag of the last request sent: to retry it on a new
// connection, when this one broke before its reply came (DoTag).
func (c *Conn) LastTag() string { return c.lastTag }

// DoTag sends line tagged tag and reads its reply. A tag the player's
// earlier request had gets that request's kept reply, and the request is
// not run again.
func (c *Conn) DoTag(tag, line string) (Reply, error) {
	if c.Timeout > 0 {
		c.c.SetDeadline(time.Now().Add(c.Timeout))
	}
	c.lastTag = tag
	if _, err := c.c.Write([]byte("#" + tag + " " + line + "\n")); err != nil {
		return Reply{}, fmt.Errorf("client: send %q: %w", line, err)
	}
	r, err := c.Read()
	if err == nil && r.Tag != tag && r.Tag != "" {
		return r, fmt.Errorf("%w: reply tagged %q to request %q", ErrProtocol, r.Tag, tag)
	}
	return r, err
}

// Read reads one reply line; pushes that come before it go to Pushes.
func (c *Conn) Read() (Reply, error) {
	for {
		s, err := c.r.ReadString('\n')
		if err != nil {
			return Reply{}, fmt.Errorf("client: read reply: %w", err)
		}
		s = strings.TrimRight(s, "\r\n")
		if text, ok := strings.CutPrefix(s, "push "); ok {
			select {
			case c.pushes <- text:
			default:
				c.DroppedPushes++
			}
			continue
		}
		return ParseReply(s)
	}
}

// ParseReply parses one reply line.
func ParseReply(s string) (Reply, error) {
	tag := ""
	if t, ok := strings.CutPrefix(s, "#"); ok {
		tag, s, _ = strings.Cut(t, " ")
	}
	r, err := parseUntagged(s)
	r.Tag = tag
	return r, err
}

func parseUntagged(s string) (Reply, error) {
	if rest, ok := strings.CutPrefix(s, "ok"); ok && (rest == "" || rest[0] == ' ') {
		return Reply{OK: true, Text: strings.TrimPrefix(rest, " ")}, nil
	}
	if rest, ok := strings.CutPrefix(s, "err "); ok {
		code, text, _ := strings.Cut(rest, " ")
		return Reply{Code: code, Text: text}, nil
	}
	return Reply{}, fmt.Errorf("%w: %q", ErrProtocol, s)
}

// Login logs in as player id without a ticket, which only a host started
// with -insecure-login accepts; any other host answers `err auth ...`.
func (c *Conn) Login(id uint64) (Reply, error) {
	return c.login(id, "login "+strconv.FormatUint(id, 10))
}

// ErrTicket means a ticket cannot be sent on the line protocol: it is empty
// or holds white space or a control character, which would end the line or
// split it into other words.
var ErrTicket = errors.New("client: ticket not sendable")

// LoginTicket logs in as player id with ticket, a signed login ticket for
// that player (from the game's account service, or `hotctl ticket`).
func (c *Conn) LoginTicket(id uint64, ticket string) (Reply, error) {
	if ticket == "" {
		return Reply{}, fmt.Errorf("%w: empty", ErrTicket)
	}
	// The ticket is a secret: the error names the offending byte, not it.
	if i := strings.IndexFunc(ticket, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }); i >= 0 {
		r, _ := utf8.DecodeRuneInString(ticket[i:])
		return Reply{}, fmt.Errorf("%w: byte %d is %q", ErrTicket, i, r)
	}
	return c.login(id, "login "+strconv.FormatUint(id, 10)+" "+ticket)
}

// login sends a login line; a refusal is an error too.
func (c *Conn) login(id uint64, line string) (Reply, error) {
	r, err := c.Do(line)
	if err == nil && !r.OK {
		err = fmt.Errorf("client: login %d: %s", id, r)
	}
	return r, err
}

// Write sends raw bytes, for tests of what a bad client sends.
func (c *Conn) Write(b []byte) (int, error) { return c.c.Write(b) }

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }
