package state

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/hothost/hothost/shmpool"
)

// Snapshot file format, version 1 (integers little-endian; records in the
// byte order their stored layout names):
//
//	header   magic "HHSNAP\0\x01" | version u32 | record size u32 |
//	         created i64 (unix ns) | count u64 | schema length u32 | 0 u32 |
//	         schema (the record layout, JSON) | CRC-32C of all of the above
//	records  count records, exactly as in the segment except Seq = 0, so
//	         each record's own Sum (CRC-32C of every byte after it) is its
//	         per-record checksum and every byte is covered
//	trailer  magic "HHSNEND\x01" | count u64 | the header's CRC u32 |
//	         CRC-32C of the trailer's first 20 bytes
//
// The trailer repeats the count and the header's checksum so that a file
// cut short, or two files spliced together, is refused as a whole.
const (
	snapMagic    = "HHSNAP\x00\x01"
	snapEnd      = "HHSNEND\x01"
	snapVersion  = 1
	snapFixed    = 40
	snapTrailer  = 24
	snapExt      = ".hhsnap"
	maxSchemaLen = 1 << 20
	maxRecSize   = 1 << 24
)

// SnapshotInfo describes one snapshot file.
type SnapshotInfo struct {
	Path     string
	Created  time.Time
	Age      time.Duration // at the time it was read
	Players  int
	Bytes    int64
	Duration time.Duration // to write or read it
	// Layout is the stored layout of T; Layout.Fingerprint() keys a
	// MigrateFunc for it.
	Layout *shmpool.Layout

	diff string
}

// Snapshot writes every player to a new file in Options.SnapshotDir
// without stopping updates: each record is copied with a sequence-lock
// read (it never blocks a commit), so each player is consistent (whole, committed), while different
// players may be from slightly different instants. The file is written
// under a temporary name, fsynced, renamed into place and the directory
// fsynced; then all but the newest Options.KeepSnapshots are removed.
func (s *Store[T]) Snapshot() (SnapshotInfo, error) {
	if s.opts.SnapshotDir == "" {
		return SnapshotInfo{}, errors.New("state: snapshot: Options.SnapshotDir is empty")
	}
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	if s.closed.Load() {
		return SnapshotInfo{}, ErrClosed
	}
	start := time.Now()
	info, err := s.writeSnapshot(start)
	if err != nil {
		err = fmt.Errorf("state: snapshot to %s: %w", s.opts.SnapshotDir, err)
		s.noteSnapshot(SnapshotInfo{}, err)
		return info, err
	}
	info.Duration = time.Since(start)
	s.noteSnapshot(info, nil)
	if err := pruneSnapshots(s.opts.SnapshotDir, s.opts.Name, s.opts.KeepSnapshots); err != nil {
		s.log.Warn("state: pruning old snapshots", "cause", err)
	}
	s.log.Info("state: snapshot written", "path", info.Path, "players", info.Players, "bytes", info.Bytes, "duration", info.Duration)
	return info, nil
}

func (s *Store[T]) writeSnapshot(created time.Time) (info SnapshotInfo, err error) {
	if err := os.MkdirAll(s.opts.SnapshotDir, 0o700); err != nil {
		return info, err
	}
	f, err := os.CreateTemp(s.opts.SnapshotDir, "."+s.opts.Name+"-*.tmp")
	if err != nil {
		return info, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	schema, err := recordSchema[T]()
	if err != nil {
		return info, err
	}
	hdr := encodeSnapHeader(int(s.recSize), created, 0, schema)
	w := bufio.NewWriterSize(f, 1<<20)
	w.Write(hdr)
	count := uint64(0)
	rec := new(record[T])
	buf := recordBytes(rec)
	for i := range s.locks {
		if !s.read(i, rec) {
			continue
		}
		rec.Seq = 0 // see the format
		if _, err := w.Write(buf); err != nil {
			return info, err
		}
		count++
	}
	// The count is known only now: patch it into the header, and its CRC.
	hdr = encodeSnapHeader(int(s.recSize), created, count, schema)
	hsum := binary.LittleEndian.Uint32(hdr[len(hdr)-4:])
	w.Write(encodeSnapTrailer(count, hsum))
	if err := w.Flush(); err != nil {
		return info, err
	}
	if _, err := f.WriteAt(hdr, 0); err != nil {
		return info, err
	}
	if err := f.Sync(); err != nil {
		return info, err
	}
	size, _ := f.Seek(0, io.SeekEnd)
	if err := f.Close(); err != nil {
		return info, err
	}
	path := filepath.Join(s.opts.SnapshotDir, fmt.Sprintf("%s-%020d%s", s.opts.Name, created.UnixNano(), snapExt))
	if err := os.Rename(f.Name(), path); err != nil {
		return info, err
	}
	if err := syncDir(s.opts.SnapshotDir); err != nil {
		return info, err
	}
	return SnapshotInfo{Path: path, Created: created, Players: int(count), Bytes: size, Layout: s.layout}, nil
}

func recordSchema[T any]() ([]byte, error) {
	l, err := shmpool.Describe(reflect.TypeFor[record[T]]())
	if err != nil {
		return nil, err
	}
	return json.Marshal(l)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func encodeSnapHeader(recSize int, created time.Time, count uint64, schema []byte) []byte {
	le := binary.LittleEndian
	b := make([]byte, snapFixed+len(schema)+4)
	copy(b, snapMagic)
	le.PutUint32(b[8:], snapVersion)
	le.PutUint32(b[12:], uint32(recSize))
	le.PutUint64(b[16:], uint64(created.UnixNano()))
	le.PutUint64(b[24:], count)
	le.PutUint32(b[32:], uint32(len(schema)))
	copy(b[snapFixed:], schema)
	n := snapFixed + len(schema)
	le.PutUint32(b[n:], crc32.Checksum(b[:n], castagnoli))
	return b
}

func encodeSnapTrailer(count uint64, headerSum uint32) []byte {
	le := binary.LittleEndian
	b := make([]byte, snapTrailer)
	copy(b, snapEnd)
	le.PutUint64(b[8:], count)
	le.PutUint32(b[16:], headerSum)
	le.PutUint32(b[20:], crc32.Checksum(b[:20], castagnoli))
	return b
}

// snapHeader is a decoded, checked snapshot header.
type snapHeader struct {
	recSize int
	created time.Time
	count   uint64
	layout  *shmpool.Layout // of the record
	val     *shmpool.Type
	sum     uint32
	size    int64 // header bytes
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrSnapshotCorrupt, fmt.Sprintf(format, args...))
}

// readSnapHeader reads and checks a header. Like everything reading
// snapshots it is safe on arbitrary bytes: lengths are bounded before
// anything is allocated, and the schema is checked by shmpool.DecodeLayout.
func readSnapHeader(r io.Reader) (snapHeader, error) {
	le := binary.LittleEndian
	var h snapHeader
	fixed := make([]byte, snapFixed)
	if _, err := io.ReadFull(r, fixed); err != nil {
		return h, corrupt("header: %v", err)
	}
	if string(fixed[:8]) != snapMagic {
		return h, corrupt("magic %q, want %q", fixed[:8], snapMagic)
	}
	if v := le.Uint32(fixed[8:]); v != snapVersion {
		return h, corrupt("version %d, this build reads %d", v, snapVersion)
	}
	slen := le.Uint32(fixed[32:])
	if slen > maxSchemaLen {
		return h, corrupt("schema of %d bytes", slen)
	}
	rest := make([]byte, int(slen)+4)
	if _, err := io.ReadFull(r, rest); err != nil {
		return h, corrupt("schema: %v", err)
	}
	all := append(fixed, rest[:slen]...)
	h.sum = le.Uint32(rest[slen:])
	if got := crc32.Checksum(all, castagnoli); got != h.sum {
		return h, corrupt("header checksum %#08x, computed %#08x", h.sum, got)
	}
	if le.Uint32(fixed[36:]) != 0 {
		return h, corrupt("reserved header word is not zero")
	}
	l, err := shmpool.DecodeLayout(rest[:slen])
	if err != nil {
		return h, corrupt("schema: %v", err)
	}
	val, err := recordValType(l)
	if err != nil {
		return h, corrupt("schema: %v", err)
	}
	h.recSize = int(le.Uint32(fixed[12:]))
	if uint64(h.recSize) != l.Type.Size || h.recSize < recHeader || h.recSize > maxRecSize {
		return h, corrupt("record size %d, schema says %d", h.recSize, l.Type.Size)
	}
	h.created = time.Unix(0, int64(le.Uint64(fixed[16:])))
	h.count = le.Uint64(fixed[24:])
	h.layout, h.val = l, val
	h.size = int64(len(all) + 4)
	return h, nil
}

// readSnapRecords reads h.count records, checking each, then the trailer,
// then the end of the input. fn sees each record's bytes, valid only
// during the call.
func readSnapRecords(r io.Reader, h snapHeader, fn func(rec []byte) error) error {
	per := max(1, (1<<20)/h.recSize)
	buf := make([]byte, uint64(h.recSize)*min(uint64(per), max(h.count, 1)))
	for left := h.count; left > 0; {
		n := min(left, uint64(len(buf)/h.recSize))
		chunk := buf[:n*uint64(h.recSize)]
		if _, err := io.ReadFull(r, chunk); err != nil {
			return corrupt("record %d of %d: %v", h.count-left, h.count, err)
		}
		for off := 0; off < len(chunk); off += h.recSize {
			rec := chunk[off : off+h.recSize]
			if err := checkRecord(rec, true); err != nil {
				return corrupt("record %d (player %d): %v", h.count-left, ne.Uint64(rec[8:]), err)
			}
			if fn != nil {
				if err := fn(rec); err != nil {
					return err
				}
			}
			left--
		}
	}
	t := make([]byte, snapTrailer+1)
	if n, err := io.ReadFull(r, t); n != snapTrailer || err != io.ErrUnexpectedEOF {
		if n > snapTrailer {
			return corrupt("bytes after the trailer")
		}
		return corrupt("trailer: %d bytes, want %d", n, snapTrailer)
	}
	le := binary.LittleEndian
	switch {
	case string(t[:8]) != snapEnd:
		return corrupt("trailer magic %q", t[:8])
	case le.Uint32(t[20:]) != crc32.Checksum(t[:20], castagnoli):
		return corrupt("trailer checksum")
	case le.Uint64(t[8:]) != h.count || le.Uint32(t[16:]) != h.sum:
		return corrupt("trailer does not belong to the header (count %d, header %d)", le.Uint64(t[8:]), h.count)
	}
	return nil
}

// ReadSnapshot reads and checks a whole snapshot from r, calling fn (if
// not nil) with each player as a Record read through the stored layout.
// Arbitrary bytes give an error wrapping ErrSnapshotCorrupt (or
// ErrIncompatible for a snapshot of another byte order), never a panic.
// fn may have seen records before an error further on is found: to load a
// snapshot all or nothing, use LoadSnapshot.
func ReadSnapshot(r io.Reader, fn func(id uint64, rec Record) error) (SnapshotInfo, error) {
	start := time.Now()
	h, err := readSnapHeader(r)
	if err != nil {
		return SnapshotInfo{}, err
	}
	if h.layout.BigEndian != (ne.Uint16([]byte{0, 1}) == 1) {
		return SnapshotInfo{}, fmt.Errorf("%w: snapshot records are %s", ErrIncompatible, endian(h.layout.BigEndian))
	}
	var each func([]byte) error
	if fn != nil {
		each = func(rec []byte) error {
			return fn(ne.Uint64(rec[8:]), view{t: h.val, b: rec[recHeader:], id: ne.Uint64(rec[8:])})
		}
	}
	if err := readSnapRecords(r, h, each); err != nil {
		return SnapshotInfo{}, err
	}
	return SnapshotInfo{
		Created: h.created, Age: time.Since(h.created), Players: int(h.count),
		Bytes:  h.size + int64(h.count)*int64(h.recSize) + snapTrailer,
		Layout: valLayout(h.layout, h.val), Duration: time.Since(start),
	}, nil
}

// LoadSnapshot reads the snapshot file path into a map, converting records
// of another layout of T by field name (and migrations, keyed like
// Options.Migrations). It returns all players or an error, never part.
func LoadSnapshot[T any](path string, migrations map[[32]byte]MigrateFunc) (map[uint64]T, SnapshotInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, SnapshotInfo{}, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	h, err := readSnapHeader(r)
	if err != nil {
		return nil, SnapshotInfo{}, fmt.Errorf("%s: %w", path, err)
	}
	p, err := planFor[T](h.layout, Options{Migrations: migrations})
	if err != nil {
		return nil, SnapshotInfo{}, fmt.Errorf("%s: %w", path, err)
	}
	out := make(map[uint64]T, min(h.count, 1<<20))
	err = readSnapRecords(r, h, func(rec []byte) error {
		var v T
		val := unsafe.Slice((*byte)(unsafe.Pointer(&v)), unsafe.Sizeof(v))
		if p.same {
			copy(val, rec[recHeader:])
		} else if err := p.convert(rec, val, &v); err != nil {
			return err
		}
		out[ne.Uint64(rec[8:])] = v
		return nil
	})
	if err != nil {
		return nil, SnapshotInfo{}, fmt.Errorf("%s: %w", path, err)
	}
	return out, SnapshotInfo{Path: path, Created: h.created, Age: time.Since(h.created), Players: int(h.count),
		Layout: valLayout(h.layout, h.val), diff: p.diff}, nil
}

// restoreFile builds the segment opts.Name from one snapshot file. Any
// error (a corrupt record at the very end included) discards the build.
func restoreFile[T any](opts Options, path string) (SnapshotInfo, error) {
	start := time.Now()
	f, err := os.Open(path)
	if err != nil {
		return SnapshotInfo{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return SnapshotInfo{}, err
	}
	h, err := readSnapHeader(f)
	if err != nil {
		return SnapshotInfo{}, err
	}
	// Refuse a truncated or padded file before building anything.
	if want := uint64(h.size) + h.count*uint64(h.recSize) + snapTrailer; h.count > 1<<40 || uint64(st.Size()) != want {
		return SnapshotInfo{}, corrupt("file has %d bytes, header says %d", st.Size(), want)
	}
	p, err := planFor[T](h.layout, opts)
	if err != nil {
		return SnapshotInfo{}, err
	}
	if h.count > uint64(maxCapacity) {
		return SnapshotInfo{}, corrupt("%d players", h.count)
	}
	capacity := max(opts.Capacity, int(h.count), 1)
	err = build[T](opts, capacity, timerSlots(opts, capacity, 0), func(b *Store[T]) error {
		return readSnapRecords(f, h, func(rec []byte) error { return b.putConverted(rec, p) })
	})
	if err != nil {
		return SnapshotInfo{}, err
	}
	return SnapshotInfo{Path: path, Created: h.created, Age: time.Since(h.created), Players: int(h.count),
		Bytes: st.Size(), Duration: time.Since(start), Layout: valLayout(h.layout, h.val), diff: p.diff}, nil
}

const maxCapacity = 1<<32 - 2 // shmpool's limit

// listSnapshots returns the snapshot files of name in dir, newest first.
func listSnapshots(dir, name string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if isSnapshotOf(e.Name(), name) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(out)
	slices.Reverse(out)
	return out, nil
}

func isSnapshotOf(file, name string) bool {
	mid, ok := strings.CutPrefix(file, name+"-")
	if !ok {
		return false
	}
	mid, ok = strings.CutSuffix(mid, snapExt)
	if !ok || len(mid) != 20 {
		return false
	}
	_, err := strconv.ParseUint(mid, 10, 64)
	return err == nil
}

// pruneSnapshots keeps the newest keep snapshots of name, and removes
// temporary files that a killed snapshot left behind.
func pruneSnapshots(dir, name string, keep int) error {
	paths, err := listSnapshots(dir, name)
	if err != nil {
		return err
	}
	var errs []error
	if len(paths) > keep {
		for _, p := range paths[keep:] {
			errs = append(errs, os.Remove(p))
		}
	}
	// Only the segment's owner snapshots it, and it holds snapMu here:
	// any temporary file of this name is a leftover.
	tmps, _ := filepath.Glob(filepath.Join(dir, "."+name+"-*.tmp"))
	for _, t := range tmps {
		errs = append(errs, os.Remove(t))
	}
	return errors.Join(errs...)
}

// startSnapshots runs Snapshot every Options.SnapshotEvery until Close.
func (s *Store[T]) startSnapshots() {
	if s.opts.SnapshotEvery <= 0 || s.opts.SnapshotDir == "" {
		return
	}
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(s.opts.SnapshotEvery)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				if _, err := s.Snapshot(); err != nil {
					s.logSnapshotFailure(err)
				}
			}
		}
	}()
}

// noteSnapshot records the outcome of one Snapshot for LastSnapshot.
func (s *Store[T]) noteSnapshot(info SnapshotInfo, err error) {
	l := &s.last
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.err = err
		l.failures++
		return
	}
	l.info, l.at, l.err, l.failures = info, time.Now(), nil, 0
}

// logSnapshotFailure says what a failed periodic snapshot means: the store
// keeps serving from shared memory, but a reboot now loses everything
// since the last good snapshot, and that window grows until one succeeds.
func (s *Store[T]) logSnapshotFailure(err error) {
	l := &s.last
	l.mu.Lock()
	info, at, n := l.info, l.at, l.failures
	l.mu.Unlock()
	attrs := []any{"cause", err, "dir", s.opts.SnapshotDir, "consecutive_failures", n, "every", s.opts.SnapshotEvery}
	if at.IsZero() {
		attrs = append(attrs, "last_good", "none (a reboot now loses every player)")
	} else {
		attrs = append(attrs, "last_good", info.Path, "last_good_age", time.Since(info.Created).Round(time.Second))
	}
	s.log.Error("state: periodic snapshot failed; still serving, but a reboot loses everything since the last good snapshot", attrs...)
}

// LastSnapshot reports the last snapshot this Store wrote (periodically,
// see Options.SnapshotEvery, or by Snapshot), when it was in place
// (renamed and fsynced), and the error of the latest attempt if that one
// failed: nil after a success. Before any successful snapshot, info is
// zero and at is the zero time.
//
// info.Created is the instant the snapshot started copying records, so
// time.Since(info.Created) bounds what a reboot would lose (the
// snapshot_age of a status page); info.Age is that, as of this call.
// A failure leaves info and at at the last success.
func (s *Store[T]) LastSnapshot() (info SnapshotInfo, at time.Time, err error) {
	l := &s.last
	l.mu.Lock()
	defer l.mu.Unlock()
	info = l.info
	if !l.at.IsZero() {
		info.Age = time.Since(info.Created)
	}
	return info, l.at, l.err
}
