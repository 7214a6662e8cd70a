package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/hothost/hothost/client"
	"github.com/hothost/hothost/internal/hostproc"
	"github.com/hothost/hothost/ticket"
)

// The host's limit on failed logins per address (cmd/hothost has no flags
// for it): 5 in a row, then one more every 2s.
const (
	loginBurst = 5
	loginEvery = 2 * time.Second
)

// authAbuse tries every way in without a valid ticket while the load runs:
// each attempt gets its `err auth`, leaves its connection logged out and
// changes no player; a flood of failed logins from one address hits that
// address's limit and no other's. The load connects from 127.0.0.1, and
// each abuser from an address of its own in 127/8 (all of it is loopback on
// Linux), so that the limit one abuser earns does not spill over.
func (e *env) authAbuse() error {
	const sc = "auth abuse"
	cfg, p, a, err := e.serve("auth", false)
	if err != nil {
		return err
	}
	l, err := e.warmLoad(e.loadCfg(p, a), 200)
	if err != nil {
		return err
	}
	defer l.Stop()
	key, err := ticket.LoadKey(filepath.Join(cfg.Dir, "data", "ticket.key"))
	if err != nil {
		return err
	}
	// The target has state (one good login and a work); the stranger
	// never logged in, and must not exist after the attempts either; the
	// bystander logs in with a valid ticket after the flood.
	const target, stranger, bystander = 4242, 4243, 4244
	if err := loginAndWork(p, target); err != nil {
		return err
	}
	before, err := playerState(e.ctx, p, target)
	if err != nil {
		return err
	}
	_, strangerErr := playerState(e.ctx, p, stranger)

	now := time.Now()
	otherKey := make([]byte, ticket.KeySize)
	rand.Read(otherKey)
	var mintErr error
	mint := func(key []byte, player uint64, ttl time.Duration, at time.Time) string {
		tk, err := ticket.Mint(key, player, ttl, at)
		mintErr = cmp(mintErr, err)
		return tk
	}
	strangers := mint(key, stranger, time.Hour, now)
	login := func(tk string) string { return fmt.Sprintf("login %d %s", target, tk) }
	attempts := []struct {
		what, line string
		want       error
	}{
		{"forged ticket (another key)", login(mint(otherKey, target, time.Hour, now)), ticket.ErrSignature},
		{"tampered ticket (sub rewritten)", login(withClaims(strangers, target, now.Add(time.Hour))), ticket.ErrSignature},
		{"expired ticket", login(mint(key, target, time.Minute, now.Add(-time.Hour))), ticket.ErrExpired},
		{"another player's ticket", login(strangers), ticket.ErrOtherPlayer},
		{"missing ticket", fmt.Sprintf("login %d", target), ticket.ErrMissing},
		{"malformed ticket", login("not.a-ticket"), ticket.ErrMalformed},
		{"alg none ticket", login(algNone(target, now.Add(time.Hour))), ticket.ErrAlgorithm},
	}
	if mintErr != nil {
		return mintErr
	}
	for i, at := range attempts {
		src := fmt.Sprintf("127.0.0.%d", 10+i)
		r, after, err := tryLogin(src, p.Addr, at.line, "balance")
		ok := err == nil && strings.HasPrefix(r, "err auth ") && strings.Contains(r, at.want.Error()) && strings.HasPrefix(after, "err nologin")
		e.check(sc, at.what, ok, "-> %q; then balance -> %q%s", clip(r, 70), clip(after, 40), errText(err))
	}

	// A flood of forged logins from one address, one connection each.
	const flood = 100
	floodSrc, forged := "127.0.0.2", login(mint(otherKey, target, time.Hour, now))
	causes, limited, others := 0, 0, 0
	firstLimited, limitMsg := -1, ""
	t0 := time.Now()
	for i := range flood {
		r, _, err := tryLogin(floodSrc, p.Addr, forged, "")
		switch {
		case err != nil:
			return fmt.Errorf("flood login %d: %w", i, err)
		case strings.Contains(r, ticket.ErrSignature.Error()):
			causes++
		case strings.HasPrefix(r, "err auth too many failed logins"):
			limited++
			if firstLimited < 0 {
				firstLimited, limitMsg = i, r
			}
		default:
			others++
		}
	}
	took := time.Since(t0)
	good, err := p.Ticket(target)
	if err != nil {
		return err
	}
	goodElsewhere, err := p.Ticket(bystander)
	if err != nil {
		return err
	}
	fromFlooder, _, err1 := tryLogin(floodSrc, p.Addr, login(good), "")
	fromElsewhere, _, err2 := tryLogin("127.0.0.3", p.Addr, fmt.Sprintf("login %d %s", bystander, goodElsewhere), "")
	// Past the burst, one failure per loginEvery gets through to its cause.
	allowed := loginBurst + int(took/loginEvery) + 1
	e.check(sc, "login flood from one address limited", firstLimited == loginBurst && causes <= allowed && others == 0,
		"%d forged logins in %v: %d 'bad ticket signature', %d limited from #%d on (%q), %d other",
		flood, took.Round(time.Millisecond), causes, limited, firstLimited, clip(limitMsg, 70), others)
	e.check(sc, "the limit is the flooder's alone", err1 == nil && err2 == nil && strings.HasPrefix(fromFlooder, "err auth too many") &&
		strings.HasPrefix(fromElsewhere, "ok welcome") && l.Failed() == 0,
		"a valid ticket from the flooding address -> %q; from another -> %q; the load (127.0.0.1): %d replies, %d failed",
		clip(fromFlooder, 50), fromElsewhere, l.Acked(), l.Failed())

	// Nothing changed: the target as before (a login would have counted
	// in Logins and LastLogin), the stranger still unknown.
	afterState, err := playerState(e.ctx, p, target)
	_, strangerAfter := playerState(e.ctx, p, stranger)
	e.check(sc, "nothing changed", err == nil && reflect.DeepEqual(before, afterState) && strangerErr != nil && strangerAfter != nil,
		"player %d before and after (admin /v1/player): logins %v, coins %v; player %d never created: %t",
		target, afterState["Logins"], afterState["Coins"], stranger, strangerAfter != nil)
	e.verify(sc, l, p.Addr)
	return nil
}

// loginAndWork logs player in with a valid ticket and works once.
func loginAndWork(p *hostproc.Proc, player uint64) error {
	tk, err := p.Ticket(player)
	if err != nil {
		return err
	}
	c, err := client.Dial(p.Addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.LoginTicket(player, tk); err != nil {
		return err
	}
	if r, err := c.Do("work"); err != nil || !r.OK {
		return fmt.Errorf("player %d work: %v %v", player, r, err)
	}
	return nil
}

// playerState is a player's state as the admin API shows it.
func playerState(ctx context.Context, p *hostproc.Proc, id uint64) (map[string]any, error) {
	var out struct {
		State map[string]any `json:"state"`
	}
	err := p.Admin(ctx, "GET", fmt.Sprintf("/v1/player?id=%d", id), &out)
	return out.State, err
}

// tryLogin connects from the local address src, sends a login line and,
// if next is not empty, one more line; it returns both replies.
func tryLogin(src, addr, line, next string) (reply, nextReply string, err error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	ask := func(line string) (string, error) {
		if _, err := c.Write([]byte(line + "\n")); err != nil {
			return "", err
		}
		r, err := br.ReadString('\n')
		return strings.TrimSpace(r), err
	}
	if reply, err = ask(line); err != nil || next == "" {
		return reply, "", err
	}
	nextReply, err = ask(next)
	return reply, nextReply, err
}

// withClaims is tk (a JWT) with its claims replaced by sub and exp, header
// and signature kept: what a client that edits its own ticket sends.
func withClaims(tk string, sub uint64, exp time.Time) string {
	parts := strings.Split(tk, ".")
	if len(parts) != 3 {
		return tk
	}
	parts[1] = segment(map[string]any{"sub": fmt.Sprint(sub), "exp": exp.Unix(), "iat": time.Now().Unix()})
	return strings.Join(parts, ".")
}

// algNone is an unsigned ticket for sub whose header says alg "none".
func algNone(sub uint64, exp time.Time) string {
	return segment(map[string]any{"alg": "none", "typ": "JWT"}) + "." +
		segment(map[string]any{"sub": fmt.Sprint(sub), "exp": exp.Unix(), "iat": time.Now().Unix()}) + "."
}

func segment(v any) string {
	b, _ := json.Marshal(v) // maps of strings and numbers always marshal
	return base64.RawURLEncoding.EncodeToString(b)
}
