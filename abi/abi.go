// Package abi is the contract between the hothost host and its plugins: the
// descriptor every plugin exports, the handler signature, the Call a handler
// sees and the host's ABI version.
//
// abi is deliberately small and has no dependencies outside the standard
// library. Go refuses to load a plugin built against another version of any
// package it shares with the host (FIELD-NOTES: "plugin was built with a
// different version of package ..."), so every change here forces a host
// rebuild and a restart. It must never hold game types, state or anything
// that changes between handler versions: those live in the game's own
// packages and in each plugin's main package.
//
// A plugin is a main package that exports one variable named Module (a
// repair plugin exports a Fix instead; see Fix):
//
//	var Module = abi.Module{
//		Name:     "coin",
//		Version:  "1.2.0",
//		ABI:      ">= 1.0, < 2.0",
//		Handlers: map[string]abi.Handler{"work": work},
//	}
//
// Handlers receive the player's state as Call.State: a pointer to the game's
// pointer-free state struct (a private copy inside a transaction; the host
// commits it only if the handler returns nil and does not panic). The game
// package, shared by host and plugins, says which type that is; a handler
// asserts it (p := c.State.(*game.Player)), which costs one comparison and
// keeps generics off the plugin boundary (no proof needed that a plugin's
// instantiation of a generic type is the host's).
package abi

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"
)

// Version is the host's ABI version. A plugin's Module.ABI constraint is
// checked against it before the plugin's handlers are ever called.
const Version = "1.2.0"

// Symbol is the name of the variable every plugin exports.
const Symbol = "Module"

// FixSymbol is the name of the variable a repair plugin exports instead of
// Module.
const FixSymbol = "Fix"

// Handler handles one message for one player. It must not keep anything
// (Call, State, Config) after it returns, and must not start goroutines.
type Handler func(c *Call) error

// Module is a plugin's descriptor.
type Module struct {
	// Name of the module, the same for every version ("coin").
	Name string
	// Version of this build, semver ("1.2.0").
	Version string
	// ABI is a version constraint on the host's abi.Version (">= 1.0, < 2.0").
	ABI string
	// Handlers by message name ("work"). A message belongs to one module.
	Handlers map[string]Handler
	// Others names, for a message that changes other players too (a gift,
	// a trade), the players it touches besides the caller, read from the
	// call's arguments before the transaction starts (Call.State is nil
	// then). The host runs the handler in one transaction across the
	// caller and all of them, at most MaxPlayers in all: committed for
	// every one of them or for none, and ordered with each one's own
	// requests. The handler reaches them with Call.Other.
	Others map[string]func(c *Call) ([]uint64, error)
	// Usage is a one-line usage per message, shown by the host's `help`
	// ("buy <item>: spend coins on an item"). Optional; a message without
	// one is listed by name.
	Usage map[string]string
	// SelfTest, when set, runs in the preflight child before the host ever
	// opens the plugin. A non-nil error rejects the version.
	SelfTest func() error
}

// Fix is a repair plugin's descriptor: a one-off change to stored player
// state ("a bug gave 5,000 players 10x coins"), run by an operator through
// the host's admin API (hotctl fix dry-run, apply, undo) instead of by
// client messages. The host opens it like a module (checksum, signature,
// build settings, preflight) but never puts it in the handler table.
//
//	var Fix = abi.Fix{
//		Name:    "coinfix",
//		Version: "1.0.0",
//		ABI:     ">= 1.1, < 2.0",
//		Doc:     "undo the 10x coins of build 4.2.0",
//		Select:  func(c *abi.Call) bool { return c.State.(*game.Player).Coins > 10_000 },
//		Apply:   func(c *abi.Call) error { c.State.(*game.Player).Coins /= 10; return nil },
//	}
//
// Apply runs as one transaction per player, ordered with that player's
// requests, and must be a function of the Call alone: the host may run it
// on a private copy first (the dry run) and, after a crash, decides
// whether it ran by comparing values.
type Fix struct {
	// Name of the fix ("coinfix"); the file is <name>-<version>.so.
	Name string
	// Version of this build, semver.
	Version string
	// ABI is a version constraint on the host's abi.Version (">= 1.1, < 2.0").
	ABI string
	// Doc says what the fix does and why, for the dry run and the audit
	// log. Optional.
	Doc string
	// Select reports whether the fix is for the player in c.State. It only
	// reads: it sees a copy, and what it writes is dropped. nil selects
	// every player the operator names (or every player, if none).
	Select func(c *Call) bool
	// Apply changes c.State like a Handler; the change is committed only
	// if it returns nil and does not panic. Required.
	Apply Handler
	// SelfTest, when set, runs in the preflight child before the host
	// opens the plugin, as Module.SelfTest does.
	SelfTest func() error
}

// Call is what a handler sees of one request.
type Call struct {
	Player uint64    // the player's id
	Msg    string    // the message name
	Args   []string  // the message's arguments, without the name
	Now    time.Time // the request's time, one value per request
	// State points at the game's state struct for this player: a private
	// copy, committed only if the handler succeeds.
	State any
	// Config is the game's current config, one consistent value for the
	// whole request. Treat it as read-only.
	Config any
	Log    *slog.Logger

	reply  string
	pushes []Push
	others []uint64
	states []any

	sched    Scheduler
	earliest time.Time // of the timers this call scheduled, when scheduled
	schedOK  bool
	timer    Timer // the timer this call fires, when firing
	firing   bool
}

// MaxPlayers is the most players one transaction touches, the caller included.
const MaxPlayers = 8

// Other returns the state of player id in this transaction: a private
// copy like State (the same pointer type), committed with it. It is nil if
// the module's Others did not name id for this message.
func (c *Call) Other(id uint64) any {
	for i, o := range c.others {
		if o == id {
			return c.states[i]
		}
	}
	return nil
}

// SetOthers gives the call the other players' states, for the host.
func (c *Call) SetOthers(ids []uint64, states []any) { c.others, c.states = ids, states }

// Push is a message for a player that the host delivers after the
// transaction that sent it commits.
type Push struct {
	Player uint64
	Text   string
}

// Tell sends a push to player (any player, the caller included): after
// the transaction commits, the host writes it to every live session of
// that player, in the order sent; if the transaction does not commit
// (an error, a panic), it is never sent. A slow reader's oldest pushes
// are dropped rather than holding anyone up.
func (c *Call) Tell(player uint64, format string, args ...any) {
	c.pushes = append(c.pushes, Push{Player: player, Text: fmt.Sprintf(format, args...)})
}

// Pushes is what Tell queued, for the host.
func (c *Call) Pushes() []Push { return c.pushes }

// Timers: a handler schedules a message for a player (itself, or another
// player of its transaction) to arrive later, as a call of its own with
// Timer() set. The timer is kept with the player's state, so it survives
// hot swaps and restarts (kill -9 included); it is scheduled (or
// cancelled) only if the call's transaction commits, and it fires once:
// the firing call's change and the timer's removal commit together. It
// runs on whichever version handles its message when it fires.

// Timer limits: the host keeps a timer's message and args in a fixed
// space beside the player.
const (
	MaxTimerMsg  = 32 // bytes of a timer's message name
	MaxTimerArgs = 72 // bytes of its args, joined by spaces
)

// Errors of Call.After and Call.Cancel.
var (
	// ErrNoTimers: the call cannot schedule timers (a repair's Apply, or a
	// handler called outside the host without SetScheduler).
	ErrNoTimers = errors.New("abi: this call has no timers")
	// ErrBadTimer: an empty message, a message or an arg that is not one
	// word, one longer than MaxTimerMsg or MaxTimerArgs, or a player not
	// in the call's transaction.
	ErrBadTimer = errors.New("abi: bad timer")
	// ErrTimersFull: the player has too many timers pending, or the call
	// changes too many, or the host has no room for another.
	ErrTimersFull = errors.New("abi: too many timers")
	// ErrTimerGone: Cancel of a timer that is not pending (it fired, was
	// cancelled, or is another player's).
	ErrTimerGone = errors.New("abi: timer not pending")
)

// Scheduler is the host's side of a call's timers: they belong to the
// call's transaction and commit with its change, or not at all.
type Scheduler interface {
	// At schedules msg with args for player at due, returning the
	// timer's id.
	At(player uint64, due time.Time, msg, args string) (id uint64, err error)
	// Cancel removes player's pending timer id.
	Cancel(player, id uint64) error
}

// Timer is the timer a call fires (Call.Timer).
type Timer struct {
	ID  uint64    // as Call.After returned it
	Due time.Time // when it was due; Call.Now is when it fired
}

// After schedules msg with args for player (the caller, or another player
// of the transaction) at c.Now + d; the host then calls msg's handler as
// if the player had sent "msg args...", with Timer() set. It returns the
// timer's id, which Cancel takes. The timer is kept only if this call
// commits. Every arg is one word (the firing call's Args are the same
// words); a message meant only for timers must check Timer(), since a
// client may send it too.
func (c *Call) After(player uint64, d time.Duration, msg string, args ...string) (uint64, error) {
	if c.sched == nil {
		return 0, ErrNoTimers
	}
	for _, w := range append([]string{msg}, args...) {
		if w == "" || strings.ContainsFunc(w, unicode.IsSpace) {
			return 0, fmt.Errorf("%w: %q is not one word", ErrBadTimer, w)
		}
	}
	due := c.Now.Add(d)
	id, err := c.sched.At(player, due, msg, strings.Join(args, " "))
	if err == nil && (!c.schedOK || due.Before(c.earliest)) {
		c.earliest, c.schedOK = due, true
	}
	return id, err
}

// Cancel removes player's pending timer id, if this call commits.
func (c *Call) Cancel(player, id uint64) error {
	if c.sched == nil {
		return ErrNoTimers
	}
	return c.sched.Cancel(player, id)
}

// Timer is the timer this call fires, and false for a client's request.
func (c *Call) Timer() (Timer, bool) { return c.timer, c.firing }

// SetScheduler gives the call its transaction's timers, for the host.
func (c *Call) SetScheduler(s Scheduler) { c.sched = s }

// SetTimer marks the call as firing t, for the host.
func (c *Call) SetTimer(t Timer) { c.timer, c.firing = t, true }

// Scheduled is the earliest due time of the timers this call scheduled,
// and false if it scheduled none, for the host.
func (c *Call) Scheduled() (earliest time.Time, ok bool) { return c.earliest, c.schedOK }

// Reply sets the text sent to the client after a successful commit.
func (c *Call) Reply(format string, args ...any) { c.reply = fmt.Sprintf(format, args...) }

// ReplyText is what Reply set, for the host.
func (c *Call) ReplyText() string { return c.reply }

// Reset clears c for reuse by the host.
func (c *Call) Reset() { *c = Call{} }

// Error is a handler's refusal with a code the client can branch on
// ("err funds not enough coins: have 3, need 10"). Any other error a handler
// returns reaches the client as code "failed".
type Error struct {
	Code string // one word, lower case
	Msg  string
}

func (e *Error) Error() string { return e.Code + ": " + e.Msg }

// Fail returns an *Error with the given code and formatted message.
func Fail(code, format string, args ...any) error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}
