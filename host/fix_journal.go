package host

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hothost/hothost/loader/sidecar"
)

// A fix run lives in <data>/fixes/runs/ as three files:
//
//   - <id>.json, the run's header: which fix (file and sha256), which
//     players (fixed at the start), the snapshot taken first, the state
//     layout, the status and the undo report. Written whole, crash-safely
//     (temporary file, fsync, rename, fsync of the folder), when the
//     status changes.
//   - <id>.log, the run's journal: one line per step of a player, appended.
//     A line is "<crc32c of the JSON, 8 hex digits> <JSON>\n", so a line
//     torn by a crash is told from a whole one. Only the last line can be
//     torn (lines are only appended); it is dropped when the journal is
//     read. A bad line before the last is damage, and the run is refused
//     with its line number.
//   - <id>.hhsnap, a link to the snapshot taken before the run, so that the
//     store's pruning of old snapshots never removes it.
//
// The journal's "intent" line is the decision record that makes a run
// survive kill -9 without applying twice (see fixRunner.one): it is
// written and fsynced while the player's lane is held, after Apply ran on
// the player's private copy and before that copy is committed.

// Journal operations.
const (
	opIntent = "intent" // about to commit After over Before (the lane is held until the commit)
	opDone   = "done"   // committed
	opVoid   = "void"   // an intent found not committed after a crash: the player is pending again
	opSame   = "same"   // Apply changed nothing; nothing committed
	opSkip   = "skip"   // not fixed: no longer selected, or no such player
	opFail   = "fail"   // Apply returned an error or panicked; nothing committed
)

// runRecord is one line of a run's journal. Before and After are the raw
// bytes of the player's value (T's layout, recorded in the header).
type runRecord struct {
	Op     string `json:"op"`
	ID     uint64 `json:"id"`
	Before []byte `json:"b,omitempty"`
	After  []byte `json:"a,omitempty"`
	Why    string `json:"why,omitempty"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errRunDamaged wraps every run file that cannot be read as written.
var errRunDamaged = errors.New("fix run file damaged")

// readJournal reads a run's journal. It returns the records and the size
// of the whole lines, which a writer truncates the file to (dropping a
// torn last line). A missing file is an empty journal.
func readJournal(path string) ([]runRecord, int64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("host: fix journal: %w", err)
	}
	var recs []runRecord
	var off int64
	for n := 1; len(b) > 0; n++ {
		end := bytes.IndexByte(b, '\n')
		if end < 0 {
			break // a torn last line: the crash came while it was written
		}
		rec, err := parseRecord(b[:end])
		if err != nil {
			if end+1 == len(b) {
				break // the last line, torn
			}
			return nil, 0, fmt.Errorf("%w: %s line %d: %v", errRunDamaged, path, n, err)
		}
		recs = append(recs, rec)
		off += int64(end + 1)
		b = b[end+1:]
	}
	return recs, off, nil
}

func parseRecord(line []byte) (runRecord, error) {
	var rec runRecord
	sum, body, ok := bytes.Cut(line, []byte{' '})
	want, err := strconv.ParseUint(string(sum), 16, 32)
	if !ok || len(sum) != 8 || err != nil {
		return rec, errors.New("no checksum")
	}
	if crc32.Checksum(body, castagnoli) != uint32(want) {
		return rec, errors.New("checksum mismatch")
	}
	if err := json.Unmarshal(body, &rec); err != nil {
		return rec, err
	}
	if rec.Op == "" || rec.ID == 0 {
		return rec, fmt.Errorf("record %q for player %d", rec.Op, rec.ID)
	}
	return rec, nil
}

// journal appends records to a run's journal and makes them durable in
// groups: every writer that needs its record on disk (an intent) waits for
// an fsync that covers it, and one fsync covers every record appended
// before it started, so concurrent workers share them.
type journal struct {
	mu      sync.Mutex
	cond    sync.Cond
	f       *os.File
	written uint64 // records appended
	synced  uint64 // records known durable
	syncing bool
	err     error // the first write or fsync failure: the journal is unusable from then on
}

// openJournal opens path for appending after truncating it to size (the
// whole lines readJournal found).
func openJournal(path string, size int64) (*journal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("host: fix journal: %w", err)
	}
	err = f.Truncate(size)
	if err == nil {
		_, err = f.Seek(size, 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("host: fix journal %s: %w", path, err)
	}
	j := &journal{f: f}
	j.cond.L = &j.mu
	return j, nil
}

// append writes rec and returns its sequence number for sync.
func (j *journal) append(rec runRecord) (uint64, error) {
	body, err := json.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("host: fix journal: %w", err)
	}
	line := fmt.Appendf(nil, "%08x %s\n", crc32.Checksum(body, castagnoli), body)
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return 0, j.err
	}
	if _, err := j.f.Write(line); err != nil {
		j.err = fmt.Errorf("host: fix journal: %w", err)
		return 0, j.err
	}
	j.written++
	return j.written, nil
}

// sync returns once record seq is durable.
func (j *journal) sync(seq uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.synced < seq {
		if j.err != nil {
			return j.err
		}
		if j.syncing {
			j.cond.Wait()
			continue
		}
		j.syncing = true
		upto := j.written
		j.mu.Unlock()
		err := j.f.Sync()
		j.mu.Lock()
		j.syncing = false
		if err != nil && j.err == nil {
			j.err = fmt.Errorf("host: fix journal fsync: %w", err)
		} else if err == nil {
			j.synced = upto
		}
		j.cond.Broadcast()
	}
	return nil
}

// write appends rec and waits until it is durable.
func (j *journal) write(rec runRecord) error {
	seq, err := j.append(rec)
	if err != nil {
		return err
	}
	return j.sync(seq)
}

func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	err := j.f.Sync()
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Run statuses.
const (
	runRunning     = "running"     // an apply works on it now (or the host died while it did: see settle)
	runDone        = "done"        // every player was handled
	runCancelled   = "cancelled"   // stopped by POST /v1/fix/cancel
	runDeadline    = "deadline"    // stopped by its deadline
	runFailed      = "failed"      // stopped by an error (too many failures, a hung Apply, a journal error)
	runInterrupted = "interrupted" // the host stopped while it ran; settled at the next start
)

// runHeader is a run's <id>.json.
type runHeader struct {
	ID        string    `json:"id"`
	Fix       string    `json:"fix"`
	Version   string    `json:"version"`
	Doc       string    `json:"doc,omitempty"`
	File      string    `json:"file"`
	SHA256    string    `json:"sha256"`
	Layout    string    `json:"layout"`     // fingerprint of the state layout the values are in
	ValueSize int       `json:"value_size"` // bytes of one value
	Selection string    `json:"selection"`  // what the operator asked for
	Players   []uint64  `json:"players"`    // the candidates, in the order they are handled
	Snapshot  string    `json:"snapshot"`   // taken before the first player was touched
	Who       string    `json:"who"`
	Started   time.Time `json:"started"`
	Ended     time.Time `json:"ended,omitzero"`
	Status    string    `json:"status"`
	Error     string    `json:"error,omitempty"`
	Resumes   int       `json:"resumes,omitempty"`
	Undo      *undoNote `json:"undo,omitempty"`
}

// undoNote is what the last undo of a run did.
type undoNote struct {
	At        time.Time     `json:"at"`
	Who       string        `json:"who"`
	Force     bool          `json:"force"`
	Restored  int           `json:"restored"`         // put back to the value before the fix
	Already   int           `json:"already"`          // held the values before the fix already
	Forced    int           `json:"forced,omitempty"` // fields changed since the fix, put back anyway (force)
	Missing   int           `json:"missing,omitempty"`
	Conflicts []fixConflict `json:"conflicts,omitempty"` // changed since the fix, left alone
}

// fixConflict is a player on which fields the fix changed changed again
// since: each as the fix wrote it (before) and as it is now (after).
type fixConflict struct {
	ID      uint64        `json:"id"`
	Changes []fieldChange `json:"changed_since"`
}

func readHeader(path string) (*runHeader, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("host: fix run: %w", err)
	}
	var h runHeader
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errRunDamaged, path, err)
	}
	if h.ID == "" || h.ID+".json" != filepath.Base(path) || h.ValueSize <= 0 {
		return nil, fmt.Errorf("%w: %s: id %q, value size %d", errRunDamaged, path, h.ID, h.ValueSize)
	}
	return &h, nil
}

// writeHeader replaces path with h, crash-safely: a reader (or the next
// start) sees the old header or the new one, whole.
func writeHeader(path string, h *runHeader) error {
	b, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return fmt.Errorf("host: fix run: %w", err)
	}
	if err := sidecar.WriteFileAtomic(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("host: fix run: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("host: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("host: fsync %s: %w", dir, err)
	}
	return nil
}
