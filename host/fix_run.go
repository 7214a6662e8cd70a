package host

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/loader"
	"github.com/hothost/hothost/state"
)

// fixRun is one apply of a fix, in memory: its header and where each
// player stands, as its journal says.
type fixRun[T any] struct {
	mu      sync.Mutex
	hdr     runHeader
	players map[uint64]*runPlayer
	order   []uint64 // players applied, in the order they were committed
	fails   []fixFailure
	counts  map[string]int // players by their op
	path    string         // the header; the journal is .log beside it
	size    int64          // whole lines of the journal, when it is not open

	// While an apply works on the run:
	j      *journal
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// runPlayer is where one player of a run stands.
type runPlayer struct {
	op            string
	before, after []byte // set by its intent
}

func (run *fixRun[T]) logPath() string { return strings.TrimSuffix(run.path, ".json") + ".log" }

// note records rec in memory (the caller holds run.mu or owns the run).
func (run *fixRun[T]) note(rec runRecord) {
	p := run.players[rec.ID]
	if p == nil {
		p = &runPlayer{}
		run.players[rec.ID] = p
	}
	run.counts[p.op]--
	p.op = rec.Op
	run.counts[p.op]++
	switch rec.Op {
	case opIntent:
		p.before, p.after = rec.Before, rec.After
	case opDone:
		run.order = append(run.order, rec.ID)
	case opFail:
		if len(run.fails) < fixListed {
			run.fails = append(run.fails, fixFailure{ID: rec.ID, Error: rec.Why})
		}
	}
}

// pending is the players not handled yet: no step, or an intent voided.
func (run *fixRun[T]) pending() []uint64 {
	run.mu.Lock()
	defer run.mu.Unlock()
	var out []uint64
	for _, id := range run.hdr.Players {
		if p := run.players[id]; p == nil || p.op == opVoid {
			out = append(out, id)
		}
	}
	return out
}

// loadRuns reads every run of the runs folder and settles the ones that
// were running when the previous process died.
func (f *fixer[T, C]) loadRuns() {
	paths, err := filepath.Glob(filepath.Join(f.runsDir, "*.json"))
	if err != nil {
		f.h.log.Error("fix runs unreadable", "dir", f.runsDir, "err", err)
		return
	}
	for _, path := range paths {
		id := strings.TrimSuffix(filepath.Base(path), ".json")
		run, err := f.readRun(path)
		if err == nil && run.hdr.Status == runRunning {
			err = f.settle(run)
		}
		if err != nil {
			f.bad[id] = err
			f.h.log.Error("fix run cannot be read; it is left as it is", "run", id, "err", err)
			continue
		}
		f.runs[id] = run
	}
}

func (f *fixer[T, C]) readRun(path string) (*fixRun[T], error) {
	hdr, err := readHeader(path)
	if err != nil {
		return nil, err
	}
	run := &fixRun[T]{hdr: *hdr, players: map[uint64]*runPlayer{}, counts: map[string]int{}, path: path}
	recs, size, err := readJournal(run.logPath())
	if err != nil {
		return nil, err
	}
	for _, rec := range recs {
		run.note(rec)
	}
	run.size = size
	return run, nil
}

// settle decides, after a crash, each player whose intent is durable but
// whose commit is not recorded. The intent was written while the player's
// lane was held, after Apply ran, and the commit followed before the lane
// was released; this runs before the new process serves any request. So
// the player holds the intent's Before exactly if the commit did not
// happen (void: the player is pending again), and anything else (the
// intent's After, or what requests made of it after the commit) means it
// did (done).
func (f *fixer[T, C]) settle(run *fixRun[T]) error {
	j, err := openJournal(run.logPath(), run.size)
	if err != nil {
		return err
	}
	var applied, voided int
	for _, id := range run.hdr.Players {
		p := run.players[id]
		if p == nil || p.op != opIntent {
			continue
		}
		rec := runRecord{Op: opDone, ID: id}
		before, ok := valueOf[T](p.before)
		cur, err := f.h.store.Get(id)
		switch {
		case !ok:
			j.close()
			return fmt.Errorf("%w: player %d's value before the fix has %d bytes, want %d", errRunDamaged, id, len(p.before), run.hdr.ValueSize)
		case errors.Is(err, state.ErrNotFound):
			rec = runRecord{Op: opSkip, ID: id, Why: "player deleted"}
		case err != nil:
			j.close()
			return err
		case sameValue(&cur, &before):
			rec.Op = opVoid
			voided++
		default:
			applied++
		}
		if _, err := j.append(rec); err != nil {
			j.close()
			return err
		}
		run.note(rec)
	}
	if err := j.close(); err != nil {
		return fmt.Errorf("host: fix journal %s: %w", run.logPath(), err)
	}
	run.size = -1 // the journal is whole now: read its size again before appending
	run.hdr.Status, run.hdr.Ended = runInterrupted, time.Now().UTC()
	run.hdr.Error = fmt.Sprintf("the host stopped while the run ran; at the next start %d players were found fixed and %d not yet", applied, voided)
	if err := writeHeader(run.path, &run.hdr); err != nil {
		return err
	}
	s := run.summary(-1)
	f.h.log.Error("FIX RUN INTERRUPTED by the host's stop; resume it with `hotctl fix resume "+run.hdr.ID+"` (or undo it)",
		"run", run.hdr.ID, "fix", run.hdr.Fix+" "+run.hdr.Version, "applied", s.Applied, "pending", s.Pending, "players", s.Players)
	return nil
}

// applyCall starts an apply: snapshot, run files, then the players in the
// background. It answers at once with the run's id and snapshot; GET
// /v1/fix/runs?run= follows it.
func (f *fixer[T, C]) applyCall(r *http.Request) (any, error) {
	q, err := f.request(r)
	if err != nil {
		return nil, err
	}
	fp, ids, sel, p := q.fp, q.ids, q.sel, q.p
	fix := fp.Fix
	id := time.Now().UTC().Format("20060102T150405.000Z") + "-" + fix.Name + "-" + fix.Version
	if err := f.reserve(id); err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			f.release()
		}
	}()
	ctx, cancel := context.WithTimeout(r.Context(), p.deadline)
	defer cancel()
	players, err := f.candidates(ctx, fix, ids)
	if err != nil {
		return nil, fmt.Errorf("host: fix %s: selecting players: %w", fix.Name, err)
	}
	if len(players) == 0 {
		return map[string]any{"fix": fix.Name, "version": fix.Version, "selection": sel, "players": 0,
			"status": "nothing to do: no player selected; nothing changed, no run recorded"}, nil
	}
	snap, err := f.snapshot(id)
	if err != nil {
		return nil, err
	}
	fpr, err := state.Fingerprint[T]()
	if err != nil {
		return nil, err
	}
	var zero T
	run := &fixRun[T]{players: map[uint64]*runPlayer{}, counts: map[string]int{}, path: filepath.Join(f.runsDir, id+".json"),
		hdr: runHeader{ID: id, Fix: fix.Name, Version: fix.Version, Doc: fix.Doc, File: fp.File, SHA256: fp.SHA256,
			Layout: hex.EncodeToString(fpr[:]), ValueSize: len(valueBytes(&zero)), Selection: sel, Players: players,
			Snapshot: snap, Who: f.h.who(r), Started: time.Now().UTC(), Status: runRunning}}
	if err := f.begin(run, fp, p); err != nil {
		return nil, err
	}
	started = true
	return run.summary(-1), nil
}

// snapshot writes a snapshot and links it beside the run, so that pruning
// never removes it; it returns the link's path.
func (f *fixer[T, C]) snapshot(id string) (string, error) {
	info, err := f.h.store.Snapshot()
	if err != nil {
		return "", fmt.Errorf("host: fix: the snapshot before the run failed, nothing was changed: %w", err)
	}
	keep := filepath.Join(f.runsDir, id+filepath.Ext(info.Path))
	if err := os.Link(info.Path, keep); err != nil {
		if err := copyFile(info.Path, keep); err != nil {
			return "", fmt.Errorf("host: fix: keep snapshot %s: %w", info.Path, err)
		}
	}
	return keep, nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o600)
}

// begin writes the run's header as running, opens its journal and starts
// the workers. The caller reserved the run.
func (f *fixer[T, C]) begin(run *fixRun[T], fp *loader.FixPlugin, p fixParams) error {
	if run.size < 0 {
		_, size, err := readJournal(run.logPath())
		if err != nil {
			return err
		}
		run.size = size
	}
	j, err := openJournal(run.logPath(), run.size)
	if err != nil {
		return err
	}
	run.mu.Lock()
	run.hdr.Status, run.hdr.Error, run.hdr.Ended = runRunning, "", time.Time{}
	err = writeHeader(run.path, &run.hdr)
	run.mu.Unlock()
	if err != nil {
		j.close()
		return err
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	ctx, stop := context.WithDeadlineCause(ctx, time.Now().Add(p.deadline), errDeadline)
	run.mu.Lock()
	run.j, run.cancel, run.done = j, cancel, make(chan struct{})
	run.mu.Unlock()
	f.mu.Lock()
	f.runs[run.hdr.ID] = run
	f.mu.Unlock()
	go func() {
		defer stop()
		f.work(ctx, run, fp.Fix, p)
	}()
	return nil
}

// Why an apply stopped early.
var (
	errDeadline  = errors.New("deadline reached")
	errCancelled = errors.New("cancelled")
)

// work handles the run's pending players with a few workers, then records
// how the run ended.
func (f *fixer[T, C]) work(ctx context.Context, run *fixRun[T], fix *abi.Fix, p fixParams) {
	defer f.release()
	defer close(run.done)
	defer run.cancel(nil)
	pending := run.pending()
	var next atomic.Int64
	var failures atomic.Int64
	var wg sync.WaitGroup
	for range max(1, min(fixWorkers, f.h.store.Lanes()/2, len(pending))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(len(pending)) {
					return
				}
				failed, err := f.one(run, fix, pending[i], p.playerTimeout)
				if failed && failures.Add(1) > int64(p.maxFailures) {
					err = fmt.Errorf("more than %d players failed (max_failures)", p.maxFailures)
				}
				if err != nil {
					run.cancel(err)
				}
			}
		}()
	}
	wg.Wait()
	status, why := runDone, ""
	switch cause := context.Cause(ctx); {
	case cause == nil:
	case errors.Is(cause, errDeadline):
		status, why = runDeadline, fmt.Sprintf("stopped by its deadline (%v)", p.deadline)
	case errors.Is(cause, errCancelled):
		status, why = runCancelled, "cancelled by an operator"
	case errors.Is(cause, state.ErrClosed):
		status, why = runInterrupted, "the host is shutting down"
	default:
		status, why = runFailed, cause.Error()
	}
	if len(run.pending()) == 0 && (status == runDeadline || status == runCancelled) {
		status, why = runDone, "" // every player was handled before the stop took effect
	}
	if err := run.j.close(); err != nil && status != runFailed {
		status, why = runFailed, err.Error()
	}
	run.mu.Lock()
	run.j = nil
	run.size = -1
	run.hdr.Status, run.hdr.Error, run.hdr.Ended = status, why, time.Now().UTC()
	err := writeHeader(run.path, &run.hdr)
	run.mu.Unlock()
	if err != nil {
		f.h.log.Error("fix run: header not written; the next start settles the run from its journal", "run", run.hdr.ID, "err", err)
	}
	s := run.summary(-1)
	result := fmt.Sprintf("%s: applied %d, unchanged %d, skipped %d, failed %d, pending %d of %d players; snapshot %s",
		status, s.Applied, s.Unchanged, s.Skipped, s.Failed, s.Pending, s.Players, s.Snapshot)
	if why != "" {
		result += "; " + why
	}
	f.audit(run.hdr.Who, "fix apply "+run.hdr.ID+" ("+run.hdr.Fix+" "+run.hdr.Version+")", result)
	f.h.log.Info("fix run ended", "run", run.hdr.ID, "result", result)
}

// audit writes one entry of a repair's outcome (the admin call that
// started it has its own).
func (f *fixer[T, C]) audit(who, what, result string) {
	if err := f.h.audit.write(auditEntry{Time: time.Now().UTC(), Who: who, Method: "FIX", What: what,
		Status: http.StatusOK, Result: result}); err != nil {
		f.h.log.Error("audit log write failed", "err", err)
	}
}

// errNoCommit ends a fix transaction without committing: the outcome is
// in the record the callback filled in.
var errNoCommit = errors.New("host: fix: nothing to commit")

// one handles one player as its own transaction on the player's lane. It
// reports whether the fix failed on the player, and an error that must
// stop the run.
//
// The order makes a crash at any instant safe: Select and Apply run on
// the lane's private copy; then the transaction is claimed (the watchdog
// can no longer fence it), the intent (before and after) is written and
// fsynced while the lane is still held, and the copy is committed; the
// done record follows without waiting for the disk. No request of the
// player can run between the intent and the commit, so settle can tell
// from the player's value whether the commit happened.
func (f *fixer[T, C]) one(run *fixRun[T], fix *abi.Fix, id uint64, timeout time.Duration) (failed bool, err error) {
	var rec runRecord
	g := new(state.Guard) // a fresh one per player: a fenced Guard stays fenced
	res := make(chan error, 1)
	go func() {
		res <- f.h.store.Run(id, g, func(v *T) error { return f.attempt(run, fix, id, v, g, &rec) })
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for received := false; !received; {
		select {
		case err = <-res:
			received = true
		case <-timer.C:
			if tok, ok := g.Running(); ok && f.h.store.Fence(g, tok, nil) {
				return true, fmt.Errorf("apply ran longer than %v on player %d and was abandoned (nothing committed; its goroutine runs on until it returns)", timeout, id)
			}
			timer.Reset(timeout) // waiting for the lane, or past Apply: committing
		}
	}
	switch {
	case err == nil:
		f.kill.at("commit")
		rec = runRecord{Op: opDone, ID: id}
	case errors.Is(err, errNoCommit):
	case errors.Is(err, state.ErrNotFound):
		rec = runRecord{Op: opSkip, ID: id, Why: "no such player"}
	case rec.Op == opIntent:
		// The intent's write failed: it may be on disk, and the player was
		// not changed. Say so, if the journal still takes it, and stop.
		rec = runRecord{Op: opVoid, ID: id}
		if jerr := run.j.write(rec); jerr != nil {
			return false, fmt.Errorf("%w (and its void record: %v)", err, jerr)
		}
		return false, err
	default:
		return false, err // the store is closing
	}
	if _, jerr := run.j.append(rec); jerr != nil {
		return false, jerr
	}
	run.mu.Lock()
	run.note(rec)
	run.mu.Unlock()
	return rec.Op == opFail, nil
}

// attempt is one's transaction callback, on the player's lane.
func (f *fixer[T, C]) attempt(run *fixRun[T], fix *abi.Fix, id uint64, v *T, g *state.Guard, rec *runRecord) error {
	before := *v
	ok, err := f.selects(fix, id, v)
	if err == nil && !ok {
		*rec = runRecord{Op: opSkip, ID: id, Why: "not selected by the fix (now)"}
		return errNoCommit
	}
	if err == nil {
		_, err = f.apply(fix, id, v)
	}
	switch {
	case err != nil:
		*rec = runRecord{Op: opFail, ID: id, Why: err.Error()}
		return errNoCommit
	case sameValue(&before, v):
		*rec = runRecord{Op: opSame, ID: id}
		return errNoCommit
	case !g.Claim():
		return state.ErrFenced
	}
	*rec = runRecord{Op: opIntent, ID: id, Before: valueBytes(&before), After: valueBytes(v)}
	if err := run.j.write(*rec); err != nil {
		return err
	}
	run.mu.Lock()
	run.note(*rec)
	run.mu.Unlock()
	f.kill.at("intent")
	return nil
}

// resumeCall continues an interrupted, cancelled, failed or timed-out run
// with the players it has not handled, with the same fix file.
func (f *fixer[T, C]) resumeCall(r *http.Request) (any, error) {
	run, err := f.runOf(r)
	if err != nil {
		return nil, err
	}
	p, err := f.params(r)
	if err != nil {
		return nil, err
	}
	if err := f.reserve(run.hdr.ID); err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			f.release()
		}
	}()
	if len(run.pending()) == 0 {
		return nil, fmt.Errorf("host: fix run %s has no player left to handle (status %s)", run.hdr.ID, run.hdr.Status)
	}
	fp, err := f.fixes.Open(r.Context(), run.hdr.File)
	if err != nil {
		return nil, fmt.Errorf("host: resume %s: %w", run.hdr.ID, err)
	}
	if fp.SHA256 != run.hdr.SHA256 {
		return nil, fmt.Errorf("host: resume %s: %s has sha256 %.16s now, the run started with %.16s", run.hdr.ID, run.hdr.File, fp.SHA256, run.hdr.SHA256)
	}
	if err := f.sameLayout(run); err != nil {
		return nil, err
	}
	run.mu.Lock()
	run.hdr.Resumes++
	run.mu.Unlock()
	if err := f.begin(run, fp, p); err != nil {
		return nil, err
	}
	started = true
	return run.summary(-1), nil
}

// sameLayout refuses a run recorded in another state layout: its values
// cannot be compared with, or written back to, this one's.
func (f *fixer[T, C]) sameLayout(run *fixRun[T]) error {
	fpr, err := state.Fingerprint[T]()
	if err != nil {
		return err
	}
	if hex.EncodeToString(fpr[:]) != run.hdr.Layout {
		return fmt.Errorf("host: fix run %s was recorded in state layout %.16s, this host's is %x: the layout changed since", run.hdr.ID, run.hdr.Layout, fpr[:8])
	}
	return nil
}

// cancelCall stops a running apply after the players in progress, and
// answers once it has stopped.
func (f *fixer[T, C]) cancelCall(r *http.Request) (any, error) {
	run, err := f.runOf(r)
	if err != nil {
		return nil, err
	}
	run.mu.Lock()
	cancel, done, status := run.cancel, run.done, run.hdr.Status
	run.mu.Unlock()
	if status != runRunning || done == nil {
		return nil, fmt.Errorf("host: fix run %s is not running (status %s)", run.hdr.ID, status)
	}
	cancel(errCancelled)
	select {
	case <-done:
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
	return run.summary(-1), nil
}

// undoCall puts back, on each applied player, the fields the fix changed,
// to their values from before the fix, in the player's own transaction;
// fields the fix did not change keep their current values. A player on
// which one of those fields changed again since the fix is a conflict,
// left alone unless force (undoFields). Running it again is safe: a
// player already put back is counted as such.
func (f *fixer[T, C]) undoCall(r *http.Request) (any, error) {
	run, err := f.runOf(r)
	if err != nil {
		return nil, err
	}
	force := r.URL.Query().Get("force")
	if force != "" && force != "1" && force != "true" {
		return nil, badRequest(fmt.Errorf("force %q: want 1 or nothing", force))
	}
	if err := f.reserve(run.hdr.ID); err != nil {
		return nil, err
	}
	defer f.release()
	if err := f.sameLayout(run); err != nil {
		return nil, err
	}
	run.mu.Lock()
	ids := slices.Clone(run.order)
	run.mu.Unlock()
	slices.Sort(ids)
	note := &undoNote{At: time.Now().UTC(), Who: f.h.who(r), Force: force != ""}
	for _, id := range ids {
		run.mu.Lock()
		p := *run.players[id]
		run.mu.Unlock()
		before, ok1 := valueOf[T](p.before)
		after, ok2 := valueOf[T](p.after)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%w: run %s: player %d's values are not %d bytes", errRunDamaged, run.hdr.ID, id, run.hdr.ValueSize)
		}
		var outcome int
		var conflicts []fieldChange
		err := f.h.store.Update(id, func(v *T) error {
			outcome, conflicts = undoFields(v, &before, &after, note.Force)
			if outcome != undoRestore {
				return errNoCommit
			}
			return nil
		})
		switch {
		case errors.Is(err, state.ErrNotFound):
			note.Missing++
		case err != nil && !errors.Is(err, errNoCommit):
			return nil, fmt.Errorf("host: undo %s: player %d: %w", run.hdr.ID, id, err)
		case outcome == undoAlready:
			note.Already++
		case outcome == undoConflict:
			note.Conflicts = append(note.Conflicts, fixConflict{ID: id, Changes: conflicts})
		case len(conflicts) > 0:
			note.Forced++
		default:
			note.Restored++
		}
	}
	run.mu.Lock()
	run.hdr.Undo = note
	err = writeHeader(run.path, &run.hdr)
	run.mu.Unlock()
	if err != nil {
		return nil, err
	}
	f.audit(note.Who, "fix undo "+run.hdr.ID+" ("+run.hdr.Fix+" "+run.hdr.Version+")",
		fmt.Sprintf("restored %d, already %d, forced %d, conflicts %d, missing %d of %d applied players",
			note.Restored, note.Already, note.Forced, len(note.Conflicts), note.Missing, len(ids)))
	return run.summary(-1), nil
}

// runSummary is a run as GET /v1/fix/runs shows it.
type runSummary struct {
	ID        string       `json:"id"`
	Fix       string       `json:"fix,omitempty"`
	Version   string       `json:"version,omitempty"`
	Doc       string       `json:"doc,omitempty"`
	File      string       `json:"file,omitempty"`
	Selection string       `json:"selection,omitempty"`
	Status    string       `json:"status"`
	Error     string       `json:"error,omitempty"`
	Snapshot  string       `json:"snapshot,omitempty"`
	Who       string       `json:"who,omitempty"`
	Started   time.Time    `json:"started,omitzero"`
	Ended     time.Time    `json:"ended,omitzero"`
	Resumes   int          `json:"resumes,omitempty"`
	Players   int          `json:"players"`
	Applied   int          `json:"applied"`
	Unchanged int          `json:"unchanged"`
	Skipped   int          `json:"skipped"`
	Failed    int          `json:"failed"`
	Pending   int          `json:"pending"`
	Undo      *undoNote    `json:"undo,omitempty"`
	Failures  []fixFailure `json:"failures,omitempty"`
	Totals    []fieldTotal `json:"totals,omitempty"` // over every applied player
	Diffs     []playerDiff `json:"diffs,omitempty"`  // the first applied players, by id
}

// summary is the run's counts; with diffs >= 0 also its failures, the
// totals of what it changed and the first diffs players' changes.
func (run *fixRun[T]) summary(diffs int) runSummary {
	run.mu.Lock()
	defer run.mu.Unlock()
	h := &run.hdr
	s := runSummary{ID: h.ID, Fix: h.Fix, Version: h.Version, Doc: h.Doc, File: h.File, Selection: h.Selection,
		Status: h.Status, Error: h.Error, Snapshot: h.Snapshot, Who: h.Who, Started: h.Started, Ended: h.Ended,
		Resumes: h.Resumes, Players: len(h.Players), Undo: h.Undo,
		Applied: run.counts[opDone], Unchanged: run.counts[opSame], Skipped: run.counts[opSkip], Failed: run.counts[opFail]}
	s.Pending = s.Players - s.Applied - s.Unchanged - s.Skipped - s.Failed
	if diffs < 0 {
		return s
	}
	s.Failures = run.fails
	totals := fieldTotals{}
	ids := slices.Clone(run.order)
	slices.Sort(ids)
	for _, id := range ids {
		p := run.players[id]
		before, ok1 := valueOf[T](p.before)
		after, ok2 := valueOf[T](p.after)
		if !ok1 || !ok2 {
			continue
		}
		changes := diffValues(&before, &after)
		totals.add(changes)
		if len(s.Diffs) < diffs {
			s.Diffs = append(s.Diffs, playerDiff{ID: id, Changes: changes})
		}
	}
	s.Totals = totals.list()
	return s
}

// killSeam is FixKillEnv parsed: kill the process at the nth time the
// named point is passed.
// A nil *killSeam never kills.
type killSeam struct {
	point string
	n     int64
	seen  atomic.Int64
}

func parseKillSeam(s string) (*killSeam, error) {
	if s == "" {
		return nil, nil
	}
	point, n, _ := strings.Cut(s, ":")
	k, err := strconv.ParseInt(n, 10, 64)
	if (point != "intent" && point != "commit") || err != nil || k < 1 {
		return nil, fmt.Errorf("%s=%q: want intent:N or commit:N", FixKillEnv, s)
	}
	return &killSeam{point: point, n: k}, nil
}

func (k *killSeam) at(point string) {
	if k == nil || k.point != point || k.seen.Add(1) != k.n {
		return
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL is on its way; nothing more may happen here
}
