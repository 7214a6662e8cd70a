package host

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/loader"
)

// Repairs ("a bug gave 5,000 players 10x coins") are plugins of their own
// kind, abi.Fix, run through the admin API rather than by client messages:
//
//	POST /v1/fix/dry-run?file=F[&ids=1,2,5-9][&limit=N][&deadline=D]
//	POST /v1/fix/apply?file=F[&ids=...][&deadline=D][&player_timeout=D][&max_failures=N]
//	POST /v1/fix/resume?run=R[&deadline=D][&player_timeout=D][&max_failures=N]
//	POST /v1/fix/cancel?run=R
//	POST /v1/fix/undo?run=R[&force=1]
//	GET  /v1/fix/runs[?run=R[&diffs=N]]
//
// F is a file in <data>/fixes (with its .sha256, and .sig when the host
// requires signed plugins), opened with a module's checks (loader.Fixes).
// The players are those named by ids, else every player; the fix's Select
// then decides, on each player's current value.
//
// A dry run runs Apply on a private copy of every selected player and
// answers each field that would change, with totals; nothing is committed.
// An apply takes a snapshot first, then runs each player as its own
// transaction on the player's lane (ordered with its requests, under
// load), and keeps a durable record of every step (fix_journal.go), so
// that a run the host's death interrupted is settled at the next start and
// resumed on request without fixing any player twice. Undo puts back the
// fields the fix changed, except on players where one of them changed
// again since (conflicts), unless forced. One apply, resume or undo runs
// at a time.

// FixKillEnv is a test seam: set to "intent:N" or "commit:N", it makes the
// host kill itself with SIGKILL right after the Nth player's intent is
// durable, or right after the Nth player's fix is committed, which are the
// two instants a crash-safe run must survive. Never set it in production.
const FixKillEnv = "HOTHOST_FIX_TEST_KILL"

// Defaults of the admin calls.
const (
	fixDeadline    = 10 * time.Minute // a dry run or apply stops after this long
	fixMaxFailures = 10               // players whose Apply fails before an apply stops
	fixListed      = 100              // players a dry run lists (the totals cover all)
	fixWorkers     = 8                // players an apply handles at once, at most
	maxFixIDs      = 10_000_000       // players an ids list may name
)

// runIDRE is the form of a run id: the start time, the fix and its version.
var runIDRE = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}\.[0-9]{3}Z-[a-z][a-z0-9_]*-[0-9A-Za-z.+-]+$`)

// fixer runs the repairs of one host.
type fixer[T, C any] struct {
	h       *Host[T, C]
	dir     string // <data>/fixes: the fix files
	runsDir string // <data>/fixes/runs
	fixes   *loader.Fixes
	err     error     // why repairs are unavailable, if they are
	kill    *killSeam // FixKillEnv, or nil

	mu   sync.Mutex
	runs map[string]*fixRun[T]
	bad  map[string]error // run files that cannot be read, by run id
	busy string           // the run an apply, resume or undo works on; "" when none
}

// fixers holds each host's fixer. Host's fields belong to host.go; the
// fixer is made when the first admin server is built (Run does that before
// it serves clients, which settling needs) and shared by the others.
var fixers sync.Map // *Host[T, C] -> *fixerOnce[T, C]

type fixerOnce[T, C any] struct {
	once sync.Once
	f    *fixer[T, C]
}

func (h *Host[T, C]) fixer() *fixer[T, C] {
	v, _ := fixers.LoadOrStore(h, &fixerOnce[T, C]{})
	fo := v.(*fixerOnce[T, C])
	fo.once.Do(func() { fo.f = newFixer(h) })
	return fo.f
}

// registerFix adds the repair routes to an admin mux. The first call also
// loads the run files and settles runs the previous process was running
// when it died: it must come before the host serves clients.
func (h *Host[T, C]) registerFix(mux *http.ServeMux) {
	f := h.fixer()
	mux.HandleFunc("POST /v1/fix/dry-run", h.jsonCall(f.dryRunCall))
	mux.HandleFunc("POST /v1/fix/apply", h.jsonCall(f.applyCall))
	mux.HandleFunc("POST /v1/fix/resume", h.jsonCall(f.resumeCall))
	mux.HandleFunc("POST /v1/fix/cancel", h.jsonCall(f.cancelCall))
	mux.HandleFunc("POST /v1/fix/undo", h.jsonCall(f.undoCall))
	mux.HandleFunc("GET /v1/fix/runs", h.jsonCall(f.runsCall))
}

func newFixer[T, C any](h *Host[T, C]) *fixer[T, C] {
	f := &fixer[T, C]{h: h, dir: filepath.Join(h.opts.DataDir, "fixes"), runs: map[string]*fixRun[T]{}, bad: map[string]error{}}
	f.runsDir = filepath.Join(f.dir, "runs")
	f.kill, f.err = parseKillSeam(os.Getenv(FixKillEnv))
	if f.err == nil {
		f.err = os.MkdirAll(f.runsDir, 0o700)
	}
	if f.err == nil {
		f.fixes, f.err = h.newFixes()
	}
	if f.err != nil {
		f.err = fmt.Errorf("host: repairs unavailable: %w", f.err)
		h.log.Error("repairs unavailable", "err", f.err)
		return f
	}
	f.loadRuns()
	return f
}

func (h *Host[T, C]) newFixes() (*loader.Fixes, error) {
	var opts loader.FixOptions
	if h.opts.PublicKey != "" {
		b, err := os.ReadFile(h.opts.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		if opts.PublicKey, err = parsePublicKey(b); err != nil {
			return nil, fmt.Errorf("public key %s: %w", h.opts.PublicKey, err)
		}
	}
	return loader.NewFixes(opts)
}

// open opens the fix file named by the request's file parameter: a file
// of the fix directory, named as hhbuild names it.
func (f *fixer[T, C]) open(r *http.Request) (*loader.FixPlugin, error) {
	name, err := need(r, "file")
	if err != nil {
		return nil, err
	}
	if filepath.Base(name) != name || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".so") {
		return nil, badRequest(fmt.Errorf("file %q: name a <fix>-<version>.so in %s", name, f.dir))
	}
	fp, err := f.fixes.Open(r.Context(), filepath.Join(f.dir, name))
	if err != nil {
		return nil, fmt.Errorf("host: fix %s: %w", name, err)
	}
	return fp, nil
}

// fixParams are an apply's or resume's bounds.
type fixParams struct {
	deadline, playerTimeout time.Duration
	maxFailures             int
}

func (f *fixer[T, C]) params(r *http.Request) (fixParams, error) {
	p := fixParams{deadline: fixDeadline, playerTimeout: f.h.opts.HandlerTimeout, maxFailures: fixMaxFailures}
	q := r.URL.Query()
	for _, d := range []struct {
		key string
		to  *time.Duration
	}{{"deadline", &p.deadline}, {"player_timeout", &p.playerTimeout}} {
		if s := q.Get(d.key); s != "" {
			v, err := time.ParseDuration(s)
			if err != nil || v <= 0 {
				return p, badRequest(fmt.Errorf("%s %q: want a positive duration (90s, 10m)", d.key, s))
			}
			*d.to = v
		}
	}
	if s := q.Get("max_failures"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return p, badRequest(fmt.Errorf("max_failures %q: want a number from 0", s))
		}
		p.maxFailures = n
	}
	return p, nil
}

// parseIDs reads "1,2,5-9" (ranges inclusive) into ascending, distinct ids.
func parseIDs(s string) ([]uint64, error) {
	var ids []uint64
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := parsePlayerID(lo)
		if err != nil {
			return nil, fmt.Errorf("ids %q: %w", part, err)
		}
		b := a
		if isRange {
			if b, err = parsePlayerID(hi); err != nil || b < a {
				return nil, fmt.Errorf("ids %q: want a range low-high of player ids", part)
			}
		}
		if b-a >= maxFixIDs || len(ids)+int(b-a) >= maxFixIDs {
			return nil, fmt.Errorf("ids: more than %d players", maxFixIDs)
		}
		for id := a; ; id++ {
			ids = append(ids, id)
			if id == b {
				break
			}
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// requestedIDs is the ids parameter (nil without one) and its description.
func requestedIDs(r *http.Request) ([]uint64, string, error) {
	s := r.URL.Query().Get("ids")
	if s == "" {
		return nil, "every player the fix selects", nil
	}
	ids, err := parseIDs(s)
	if err != nil {
		return nil, "", badRequest(err)
	}
	return ids, "players " + s + ", where the fix selects them", nil
}

// call is the Call a fix sees for player id with state v.
func (f *fixer[T, C]) call(fix *abi.Fix, id uint64, v *T) *abi.Call {
	return &abi.Call{Player: id, Msg: "fix " + fix.Name, Now: time.Now(), State: v,
		Config: f.h.config.current().Value, Log: f.h.log.With("fix", fix.Name, "fix_version", fix.Version)}
}

// errFixPanic wraps a Select or Apply that panicked.
var errFixPanic = errors.New("fix panicked")

// selects runs the fix's Select on a copy of v: true without a Select.
func (f *fixer[T, C]) selects(fix *abi.Fix, id uint64, v *T) (ok bool, err error) {
	if fix.Select == nil {
		return true, nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: Select on player %d: %v", errFixPanic, id, r)
		}
	}()
	c := *v
	return fix.Select(f.call(fix, id, &c)), nil
}

// apply runs the fix's Apply on v, recovering a panic.
func (f *fixer[T, C]) apply(fix *abi.Fix, id uint64, v *T) (note string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: Apply on player %d: %v", errFixPanic, id, r)
		}
	}()
	c := f.call(fix, id, v)
	err = fix.Apply(c)
	return c.ReplyText(), err
}

// candidates are the players a run or dry run looks at: ids if given, else
// every player Select picks now (on copies).
func (f *fixer[T, C]) candidates(ctx context.Context, fix *abi.Fix, ids []uint64) ([]uint64, error) {
	if ids != nil {
		return ids, nil
	}
	var out []uint64
	var err error
	f.h.store.Each(func(id uint64, v *T) bool {
		var ok bool
		if ok, err = f.selects(fix, id, v); err != nil {
			return false
		}
		if ok {
			out = append(out, id)
		}
		return ctx.Err() == nil
	})
	if err == nil {
		err = ctx.Err()
	}
	slices.Sort(out)
	return out, err
}

// playerDiff is what a fix does (or did) to one player.
type playerDiff struct {
	ID      uint64        `json:"id"`
	Changes []fieldChange `json:"changes"`
	Note    string        `json:"note,omitempty"` // what Apply replied, if anything
}

// fixFailure is a player the fix failed on.
type fixFailure struct {
	ID    uint64 `json:"id"`
	Error string `json:"error"`
}

// dryRunReport is the answer of POST /v1/fix/dry-run.
type dryRunReport struct {
	Fix       string       `json:"fix"`
	Version   string       `json:"version"`
	Doc       string       `json:"doc,omitempty"`
	SHA256    string       `json:"sha256"`
	Selection string       `json:"selection"`
	Looked    int          `json:"looked_at"` // players looked at
	Changed   int          `json:"changed"`   // would change
	Unchanged int          `json:"unchanged"` // selected, but Apply changes nothing
	Skipped   int          `json:"skipped"`   // not selected, or no such player
	Failed    int          `json:"failed"`
	Totals    []fieldTotal `json:"totals"`
	Players   []playerDiff `json:"players"` // the first limit players that would change, by id
	Failures  []fixFailure `json:"failures,omitempty"`
	Complete  bool         `json:"complete"` // false: the deadline or the caller stopped it early
	Took      string       `json:"took"`
	Committed bool         `json:"committed"` // always false: a dry run changes nothing
}

// fixRequest is what dry-run and apply read from the request: the fix, the
// players it is for (ids, or the fix's own Select: sel says which) and the
// run's limits.
type fixRequest struct {
	fp  *loader.FixPlugin
	ids []uint64
	sel string
	p   fixParams
}

func (f *fixer[T, C]) request(r *http.Request) (fixRequest, error) {
	if f.err != nil {
		return fixRequest{}, f.err
	}
	var q fixRequest
	var err error
	if q.fp, err = f.open(r); err != nil {
		return q, err
	}
	if q.ids, q.sel, err = requestedIDs(r); err != nil {
		return q, err
	}
	q.p, err = f.params(r)
	return q, err
}

func (f *fixer[T, C]) dryRunCall(r *http.Request) (any, error) {
	q, err := f.request(r)
	if err != nil {
		return nil, err
	}
	fp, ids, sel, p := q.fp, q.ids, q.sel, q.p
	limit := fixListed
	if s := r.URL.Query().Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 0 {
			return nil, badRequest(fmt.Errorf("limit %q: want a number from 0", s))
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.deadline)
	defer cancel()
	return f.dryRun(ctx, fp, ids, sel, limit), nil
}

// dryRun runs the fix on a private copy of every candidate.
func (f *fixer[T, C]) dryRun(ctx context.Context, fp *loader.FixPlugin, ids []uint64, sel string, limit int) *dryRunReport {
	start := time.Now()
	fix := fp.Fix
	rep := &dryRunReport{Fix: fix.Name, Version: fix.Version, Doc: fix.Doc, SHA256: fp.SHA256, Selection: sel, Players: []playerDiff{}}
	totals := fieldTotals{}
	one := func(id uint64, v *T) {
		rep.Looked++
		ok, err := f.selects(fix, id, v)
		if err == nil && !ok {
			rep.Skipped++
			return
		}
		after := *v
		var note string
		if err == nil {
			note, err = f.apply(fix, id, &after)
		}
		if err != nil {
			rep.Failed++
			if len(rep.Failures) < fixListed {
				rep.Failures = append(rep.Failures, fixFailure{ID: id, Error: err.Error()})
			}
			return
		}
		changes := diffValues(v, &after)
		if len(changes) == 0 {
			rep.Unchanged++
			return
		}
		rep.Changed++
		totals.add(changes)
		rep.Players = append(rep.Players, playerDiff{ID: id, Changes: changes, Note: note})
	}
	if ids == nil {
		f.h.store.Each(func(id uint64, v *T) bool {
			one(id, v)
			return ctx.Err() == nil
		})
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		if v, err := f.h.store.Get(id); err == nil {
			one(id, &v)
		} else {
			rep.Looked++
			rep.Skipped++
		}
	}
	// Each goes in slot order; the listing is by id.
	slices.SortFunc(rep.Players, func(a, b playerDiff) int { return cmp.Compare(a.ID, b.ID) })
	rep.Players = rep.Players[:min(limit, len(rep.Players))]
	rep.Complete = ctx.Err() == nil
	rep.Totals = totals.list()
	rep.Took = time.Since(start).Round(time.Millisecond).String()
	return rep
}

// valueBytes is a copy of v's bytes (see bytesOf).
func valueBytes[T any](v *T) []byte { return bytes.Clone(bytesOf(v)) }

// valueOf reads a value from valueBytes' output; false if b is not one.
func valueOf[T any](b []byte) (T, bool) {
	var v T
	if len(b) != len(bytesOf(&v)) {
		return v, false
	}
	copy(bytesOf(&v), b)
	return v, true
}

// sameValue reports whether a and b hold the same value field by field.
func sameValue[T any](a, b *T) bool { return len(diffValues(a, b)) == 0 }

// runOf finds the run named by the request's run parameter.
func (f *fixer[T, C]) runOf(r *http.Request) (*fixRun[T], error) {
	if f.err != nil {
		return nil, f.err
	}
	id, err := need(r, "run")
	if err != nil {
		return nil, err
	}
	if !runIDRE.MatchString(id) {
		return nil, badRequest(fmt.Errorf("run %q: not a run id (20261130T031500.000Z-<fix>-<version>)", id))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.bad[id]; err != nil {
		return nil, fmt.Errorf("host: fix run %s cannot be read: %w", id, err)
	}
	run := f.runs[id]
	if run == nil {
		return nil, &httpError{http.StatusNotFound, fmt.Errorf("no fix run %q (GET /v1/fix/runs lists them)", id)}
	}
	return run, nil
}

// reserve makes run the one an apply, resume or undo works on, or says
// which one does.
func (f *fixer[T, C]) reserve(run string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.busy != "" {
		return fmt.Errorf("host: fix run %s is in progress: wait for it, or POST /v1/fix/cancel?run=%s", f.busy, f.busy)
	}
	f.busy = run
	return nil
}

func (f *fixer[T, C]) release() {
	f.mu.Lock()
	f.busy = ""
	f.mu.Unlock()
}

// runsCall lists the runs, newest first, or one run in detail.
func (f *fixer[T, C]) runsCall(r *http.Request) (any, error) {
	if f.err != nil {
		return nil, f.err
	}
	if r.URL.Query().Get("run") != "" {
		run, err := f.runOf(r)
		if err != nil {
			return nil, err
		}
		diffs := 20
		if s := r.URL.Query().Get("diffs"); s != "" {
			if diffs, err = strconv.Atoi(s); err != nil || diffs < 0 {
				return nil, badRequest(fmt.Errorf("diffs %q: want a number from 0", s))
			}
		}
		return run.summary(diffs), nil
	}
	f.mu.Lock()
	runs := make([]*fixRun[T], 0, len(f.runs))
	for _, run := range f.runs {
		runs = append(runs, run)
	}
	out := make([]runSummary, 0, len(runs)+len(f.bad))
	for id, err := range f.bad {
		out = append(out, runSummary{ID: id, Status: "unreadable", Error: err.Error()})
	}
	f.mu.Unlock()
	for _, run := range runs {
		out = append(out, run.summary(-1))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	return out, nil
}
