// Command handwritten is the example game's server written the way a user
// would write it without hothost: a goroutine per connection, every player in
// a Go map under one mutex, the handlers as plain functions. No plugins, no
// shared memory, no lanes, no snapshots, no metrics: nothing survives the
// process and nothing can be swapped while it runs.
//
// It is the baseline of the end-to-end benchmark (examples/e2ebench). It
// speaks hothost's line protocol and gives the same replies as hothost with
// the example game's plugins (plugins/coin/v1, plugins/shop,
// plugins/profile), so internal/loadgen drives both and checks both ledgers
// the same way. It must never use hothost's request path (host, loader,
// state): what it measures is a server without them.
//
//	handwritten -listen 127.0.0.1:0    # prints "listening on 127.0.0.1:<port>"
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/hothost/hothost/plugins/game"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:7071", "client TCP address")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Error("listen", "err", err)
		os.Exit(1)
	}
	// The benchmark reads this line to learn the port of -listen :0.
	fmt.Printf("listening on %s\n", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() { <-ctx.Done(); ln.Close() }()
	if err := newServer().serve(ln); err != nil {
		log.Error("serve", "err", err)
		os.Exit(1)
	}
}

// server holds every player. One mutex guards the map and the players in it:
// a handler runs under it, so a player's requests apply one at a time.
type server struct {
	cfg     game.Config
	mu      sync.Mutex
	players map[uint64]*game.Player
}

func newServer() *server {
	return &server{cfg: game.DefaultConfig(), players: map[uint64]*game.Player{}}
}

// serve accepts connections until ln is closed.
func (s *server) serve(ln net.Listener) error {
	for {
		conn, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("accept: %w", err)
		}
		go s.session(conn)
	}
}

// maxLine bounds one request line; a longer one ends the session.
const maxLine = 1024

// session answers one connection's lines in order: `login <id>` first, then
// the game's commands.
func (s *server) session(conn net.Conn) {
	defer conn.Close()
	in := bufio.NewScanner(conn)
	in.Buffer(make([]byte, maxLine), maxLine)
	out := bufio.NewWriter(conn)
	var player uint64
	for in.Scan() {
		words := strings.Fields(in.Text())
		// A tagged request (`#17 work`) is answered with its tag.
		if len(words) > 0 && strings.HasPrefix(words[0], "#") {
			out.WriteString(words[0])
			out.WriteByte(' ')
			words = words[1:]
		}
		reply := "err frame empty"
		switch {
		case len(words) == 0:
		case strings.EqualFold(words[0], "quit"):
			out.WriteString("ok bye\n")
			out.Flush()
			return
		case strings.EqualFold(words[0], "ping"):
			reply = "ok pong"
		case strings.EqualFold(words[0], "login"):
			player, reply = s.login(player, words[1:])
		case player == 0:
			reply = "err nologin log in first: login <player-id>"
		default:
			reply = s.handle(player, strings.ToLower(words[0]), words[1:])
		}
		out.WriteString(reply)
		out.WriteByte('\n')
		if out.Flush() != nil {
			return
		}
	}
}

// login makes the connection play as the player in args (creating it on
// first sight) and returns the connection's player afterwards.
func (s *server) login(current uint64, args []string) (uint64, string) {
	if len(args) != 1 {
		return current, "err usage login <player-id>"
	}
	id, err := strconv.ParseUint(args[0], 10, 64)
	if err != nil || id == 0 {
		return current, fmt.Sprintf("err usage player id %q must be a decimal number from 1 to %d", args[0], uint64(1<<64-1))
	}
	if current != 0 && current != id {
		return current, fmt.Sprintf("err usage already logged in as %d on this connection", current)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.players[id]
	if !ok {
		p = &game.Player{}
		s.players[id] = p
	}
	game.Login(p, time.Now())
	if !ok {
		return id, fmt.Sprintf("ok welcome %d (new player)", id)
	}
	return id, fmt.Sprintf("ok welcome %d", id)
}

// handle runs one command for a logged-in player. A refused command changes
// nothing: every check comes before the first change.
func (s *server) handle(id uint64, cmd string, args []string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.players[id]
	switch cmd {
	case "work":
		if len(args) != 0 {
			return "err usage work takes no arguments"
		}
		p.Coins += s.cfg.WorkReward
		p.XP += 10
		for p.XP >= int64(p.Level+1)*s.cfg.XPPerLevel {
			p.Level++
		}
		return fmt.Sprintf("ok coins %d level %d v1", p.Coins, p.Level)
	case "balance":
		return fmt.Sprintf("ok coins %d xp %d level %d", p.Coins, p.XP, p.Level)
	case "buy":
		if len(args) != 1 {
			return "err usage buy <item>"
		}
		it, ok := s.cfg.Items[args[0]]
		if !ok {
			return fmt.Sprintf("err item no item %q for sale", args[0])
		}
		if p.Coins < it.Price {
			return fmt.Sprintf("err funds %s costs %d, you have %d", args[0], it.Price, p.Coins)
		}
		if err := p.Add(it.ID, 1); err != nil {
			return "err inventory " + err.Error()
		}
		p.Coins -= it.Price
		return fmt.Sprintf("ok bought %s for %d coins %d", args[0], it.Price, p.Coins)
	case "inventory":
		var parts []string
		for _, st := range p.Inventory {
			if st.Count > 0 {
				parts = append(parts, fmt.Sprintf("%s=%d", s.cfg.ItemName(st.Item), st.Count))
			}
		}
		if len(parts) == 0 {
			return "ok inventory empty"
		}
		return "ok inventory " + strings.Join(parts, " ")
	case "name":
		n := strings.Join(args, " ")
		if n == "" || len(n) > game.NameSize || !utf8.ValidString(n) {
			return fmt.Sprintf("err usage name <text of 1 to %d bytes of UTF-8>", game.NameSize)
		}
		p.SetName(n)
		return "ok name " + n
	case "whoami":
		n := p.NameString()
		if n == "" {
			n = "(unnamed)"
		}
		return fmt.Sprintf("ok player %d name %s coins %d level %d logins %d last %s", id, n, p.Coins, p.Level, p.Logins,
			time.Unix(p.LastLogin, 0).UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("err unknown no command %q", cmd)
}
