package state

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/hothost/hothost/shmpool"
)

// PlayerDocFormat names the format of a PlayerDoc; Import refuses others.
const PlayerDocFormat = "hothost-player/1"

var (
	// ErrBadDocument means a player document is not one Import can read:
	// malformed JSON, another format, a layout that does not add up or
	// whose fingerprint does not match it, or a value that does not fit
	// the document's own layout (a missing or unknown field, a number out
	// of its field's range, a string too long for its [N]byte). The
	// message names the field.
	ErrBadDocument = errors.New("state: bad player document")

	// ErrExists means Import would overwrite a player that exists and was
	// not told to replace it.
	ErrExists = errors.New("state: player exists")
)

// PlayerDoc is one player's value as JSON, through the schema it was
// stored with: field names to values (structs as objects, arrays as
// arrays, a [N]byte holding text as a string, a non-finite float as "NaN",
// "+Inf" or "-Inf", a complex number as "(1+2i)"), with the layout that
// gives them their meaning. Import reads it into a store of another
// layout by field name, as a layout migration would.
type PlayerDoc struct {
	Format   string    `json:"format"` // PlayerDocFormat
	ID       uint64    `json:"id"`
	Exported time.Time `json:"exported,omitzero"`
	// Fingerprint is the hex Layout.Fingerprint of Layout: the key of
	// Options.Migrations for values of this layout. Import refuses a
	// document whose layout was edited without it.
	Fingerprint string          `json:"fingerprint"`
	Layout      *shmpool.Layout `json:"layout"`
	State       any             `json:"state"`
}

// ImportReport says what Import did.
type ImportReport struct {
	ID      uint64 `json:"id"`
	Created bool   `json:"created"` // false: an existing player was replaced
	// Changes lists the layout differences the value was converted
	// across, one per line (none when the layouts are the same).
	Changes []string `json:"changes,omitempty"`
	// MigrateFunc is set when the Options.Migrations entry for the
	// document's fingerprint converted it.
	MigrateFunc bool `json:"migrate_func,omitempty"`
}

// Export returns player id's committed value as a PlayerDoc. It never
// sees half an update. The document's Layout is the store's own: do not
// change it.
func (s *Store[T]) Export(id uint64) (*PlayerDoc, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	var r record[T]
	if !s.readID(id, &r) {
		return nil, fmt.Errorf("%w: player %d", ErrNotFound, id)
	}
	fp := s.layout.Fingerprint()
	b := recordBytes(&r)[recHeader : recHeader+unsafe.Sizeof(r.Val)]
	return &PlayerDoc{Format: PlayerDocFormat, ID: id, Exported: time.Now().UTC(), Fingerprint: hex.EncodeToString(fp[:]),
		Layout: s.layout, State: jsonSafe(decodeValue(&s.layout.Type, b, 0, true))}, nil
}

// jsonSafe replaces the floats JSON cannot carry (NaN, ±Inf) with their
// names, which Import reads back.
func jsonSafe(v any) any {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return strconv.FormatFloat(x, 'g', -1, 64) // "NaN", "+Inf", "-Inf"
		}
	case []any:
		for i := range x {
			x[i] = jsonSafe(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = jsonSafe(x[k])
		}
	}
	return v
}

// DecodePlayerDoc reads one PlayerDoc from r, strictly: unknown keys,
// trailing data and another format are refused with ErrBadDocument.
// Numbers are kept exact (a uint64 above 2^53 survives).
func DecodePlayerDoc(r io.Reader) (*PlayerDoc, error) {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	dec.DisallowUnknownFields()
	var d PlayerDoc
	if err := dec.Decode(&d); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%w: malformed JSON at byte %d: %v", ErrBadDocument, se.Offset, err)
		}
		return nil, fmt.Errorf("%w: malformed JSON: %w", ErrBadDocument, err) // %w: a reader's own error stays visible
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the document (at byte %d)", ErrBadDocument, dec.InputOffset())
	}
	switch {
	case d.Format != PlayerDocFormat:
		return nil, fmt.Errorf("%w: format %q, want %q", ErrBadDocument, d.Format, PlayerDocFormat)
	case d.Layout == nil:
		return nil, fmt.Errorf("%w: no layout", ErrBadDocument)
	case d.State == nil:
		return nil, fmt.Errorf("%w: no state", ErrBadDocument)
	}
	return &d, nil
}

// Import writes the player in doc into the store as player id (doc.ID
// when id is 0), converting its value by field name into this store's
// layout with the rules of a layout migration: a field the document lacks
// starts at zero, a field this layout lacks is dropped, an integer or
// array may widen. A change that could lose a value (a narrowed integer,
// a changed kind, a shortened array) is refused with ErrIncompatible
// naming the field, unless Options.Migrations has a MigrateFunc for the
// document's fingerprint. An existing player is overwritten only when
// replace is set (else ErrExists).
//
// The write is one transaction on the player's lane, ordered with its
// other transactions and crash-atomic: after kill -9 the player is either
// as before or the imported value, never half of it, and never an empty
// player made on the way. A refused document changes nothing.
func (s *Store[T]) Import(doc *PlayerDoc, id uint64, replace bool) (*ImportReport, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if id == 0 {
		id = doc.ID
	}
	if id == 0 {
		return nil, fmt.Errorf("%w: no player id", ErrBadDocument)
	}
	old, err := doc.layout(max(1<<20, 4*s.layout.Type.Size))
	if err != nil {
		return nil, err
	}
	buf := make([]byte, old.Type.Size)
	if err := encodeValue(&old.Type, doc.State, buf, ""); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadDocument, err)
	}
	conv := newConverter(&old.Type, &s.layout.Type)
	rep := &ImportReport{ID: id}
	for _, l := range conv.diff {
		rep.Changes = append(rep.Changes, strings.Join(strings.Fields(l), " "))
	}
	fp := old.Fingerprint()
	fn := s.opts.Migrations[fp]
	if len(conv.bad) > 0 && fn == nil {
		why := make([]string, len(conv.bad))
		for i, l := range conv.bad {
			why[i] = strings.Join(strings.Fields(strings.TrimPrefix(l, "!")), " ")
		}
		return nil, fmt.Errorf("%w: player %d: %s (register Options.Migrations[%x...] to convert it)",
			ErrIncompatible, id, strings.Join(why, "; "), fp[:8])
	}
	var v T
	conv.apply(unsafe.Slice((*byte)(unsafe.Pointer(&v)), unsafe.Sizeof(v)), buf)
	if fn != nil {
		rep.MigrateFunc = true
		if err := callMigrate(fn, view{t: &old.Type, b: buf, id: id}, &v); err != nil {
			return nil, fmt.Errorf("state: import player %d: %w", id, err)
		}
	}
	if rep.Created, err = s.put(id, &v, replace); err != nil {
		return nil, err
	}
	return rep, nil
}

// layout is doc's layout, checked as a stored one is (sizes, offsets,
// nesting) and against its fingerprint, and at most limit bytes large.
func (d *PlayerDoc) layout(limit uint64) (*shmpool.Layout, error) {
	if d.Layout == nil {
		return nil, fmt.Errorf("%w: no layout", ErrBadDocument)
	}
	raw, err := json.Marshal(d.Layout)
	if err != nil {
		return nil, fmt.Errorf("%w: layout: %v", ErrBadDocument, err)
	}
	l, err := shmpool.DecodeLayout(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadDocument, err)
	}
	if fp := l.Fingerprint(); d.Fingerprint != hex.EncodeToString(fp[:]) {
		return nil, fmt.Errorf("%w: fingerprint %q does not match the layout (%x): was the layout edited?", ErrBadDocument, d.Fingerprint, fp)
	}
	if l.Type.Size > limit {
		return nil, fmt.Errorf("%w: a value of %d bytes; this store takes documents up to %d", ErrBadDocument, l.Type.Size, limit)
	}
	return l, nil
}

// put makes v player id's committed value in one crash-atomic step:
// a commit over the existing record (if replace), or a new record that
// carries v from the start (a crash before the index points at it frees
// the slot again, as for Ensure).
func (s *Store[T]) put(id uint64, v *T, replace bool) (created bool, err error) {
	if s.closed.Load() {
		return false, ErrClosed
	}
	ln := s.lane(id)
	h := ln.lock()
	defer h.mu.Unlock()
	if slot, _, rec, err := s.lookupLocked(id); err == nil {
		if !replace {
			return false, fmt.Errorf("%w: player %d (import with replace to overwrite it)", ErrExists, id)
		}
		h.scratch.ID = id
		h.scratch.Val = *v
		// Sealed afresh: the imported value replaces the record whole, and
		// a damaged record's Sum carried over would keep it damaged, for
		// the scrub to replace with a snapshot's value, the import lost.
		s.commitSealed(ln, &h.scratch, slot, rec)
		return false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return false, err
	}
	if err := s.createLocked(ln, id, v); err != nil {
		return false, fmt.Errorf("state: import player %d: %w", id, err)
	}
	return true, nil
}

// encodeValue writes v, a value as a PlayerDoc carries it, into b laid
// out as t, in this machine's byte order. path names the field for
// errors ("" is the whole value).
func encodeValue(t *shmpool.Type, v any, b []byte, path string) error {
	switch t.Kind {
	case shmpool.Bool:
		x, ok := v.(bool)
		if !ok {
			return wrongType(path, "a bool", v)
		}
		if x {
			b[0] = 1
		}
	case shmpool.Float32, shmpool.Float64:
		bits := 8 * int(t.Size)
		f, err := floatOf(v, bits)
		if err != nil {
			return fmt.Errorf("%s: %w", display(path), err)
		}
		if bits == 32 {
			ne.PutUint32(b, math.Float32bits(float32(f)))
		} else {
			ne.PutUint64(b, math.Float64bits(f))
		}
	case shmpool.Complex64, shmpool.Complex128:
		str, ok := v.(string)
		c, err := strconv.ParseComplex(str, 8*int(t.Size))
		if !ok || err != nil {
			return wrongType(path, "a complex number like \"(1+2i)\"", v)
		}
		if t.Kind == shmpool.Complex64 {
			ne.PutUint32(b, math.Float32bits(float32(real(c))))
			ne.PutUint32(b[4:], math.Float32bits(float32(imag(c))))
		} else {
			ne.PutUint64(b, math.Float64bits(real(c)))
			ne.PutUint64(b[8:], math.Float64bits(imag(c)))
		}
	case shmpool.Array:
		return encodeArray(t, v, b, path)
	case shmpool.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return wrongType(path, "an object", v)
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if k != "_" && !slices.ContainsFunc(t.Fields, func(f shmpool.Field) bool { return f.Name == k }) {
				return fmt.Errorf("%s: no such field in the document's layout", display(path+"."+k))
			}
		}
		for i := range t.Fields {
			f := &t.Fields[i]
			if f.Name == "_" { // blank padding: stays zero
				continue
			}
			x, ok := m[f.Name]
			if !ok {
				return fmt.Errorf("%s: missing (the document's layout has it)", display(path+"."+f.Name))
			}
			if err := encodeValue(&f.Type, x, b[f.Offset:f.Offset+f.Type.Size], path+"."+f.Name); err != nil {
				return err
			}
		}
	default:
		return encodeInt(t.Kind, v, b, path)
	}
	return nil
}

func encodeArray(t *shmpool.Type, v any, b []byte, path string) error {
	if s, ok := v.(string); ok && t.Elem.Kind == shmpool.Uint8 {
		if len(s) > t.Len {
			return fmt.Errorf("%s: a string of %d bytes does not fit in [%d]byte", display(path), len(s), t.Len)
		}
		copy(b, s)
		return nil
	}
	xs, ok := v.([]any)
	if !ok {
		return wrongType(path, fmt.Sprintf("an array of %d", t.Len), v)
	}
	if t.Elem.Size == 0 { // [n]struct{}: nothing to write
		return nil
	}
	if len(xs) != t.Len {
		return fmt.Errorf("%s: %d elements, the document's layout says %d", display(path), len(xs), t.Len)
	}
	for i, x := range xs {
		off := uint64(i) * t.Elem.Size
		if err := encodeValue(t.Elem, x, b[off:off+t.Elem.Size], fmt.Sprintf("%s[%d]", path, i)); err != nil {
			return err
		}
	}
	return nil
}

func encodeInt(k shmpool.Kind, v any, b []byte, path string) error {
	size := intSize(k)
	if size == 0 {
		return fmt.Errorf("%s: unknown kind %q", display(path), k)
	}
	var text string
	switch x := v.(type) {
	case json.Number:
		text = string(x)
	case int64:
		text = strconv.FormatInt(x, 10)
	case uint64:
		text = strconv.FormatUint(x, 10)
	case int:
		text = strconv.Itoa(x)
	case float64:
		text = strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return wrongType(path, "an integer", v)
	}
	var u uint64
	var err error
	if signed(k) {
		var i int64
		i, err = strconv.ParseInt(text, 10, 8*size)
		u = uint64(i)
	} else if u, err = strconv.ParseUint(text, 10, 8*size); err != nil && strings.HasPrefix(text, "-") {
		if _, ierr := strconv.ParseInt(text, 10, 64); ierr == nil || errors.Is(ierr, strconv.ErrRange) {
			err = strconv.ErrRange // a negative integer: out of an unsigned kind's range
		}
	}
	if errors.Is(err, strconv.ErrRange) {
		return fmt.Errorf("%s: %s does not fit in %s", display(path), text, k)
	}
	if err != nil {
		return fmt.Errorf("%s: %s is not an integer (%s)", display(path), text, k)
	}
	putInt(b, size, u)
	return nil
}

// floatOf reads a float field's value: a number, or the name of a
// non-finite one ("NaN", "+Inf", "-Inf").
func floatOf(v any, bits int) (float64, error) {
	var f float64
	var err error
	switch x := v.(type) {
	case json.Number:
		f, err = strconv.ParseFloat(string(x), bits)
	case float64:
		f = x
		if bits == 32 && !math.IsInf(f, 0) && math.Abs(f) > math.MaxFloat32 {
			err = strconv.ErrRange
		}
	case string:
		f, err = strconv.ParseFloat(x, bits)
		if err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return 0, fmt.Errorf("%q: a finite float is written as a number", x)
		}
	default:
		return 0, fmt.Errorf("want a float%d, got %s", bits, jsonKind(v))
	}
	if err != nil {
		return 0, fmt.Errorf("%v does not fit in float%d", v, bits)
	}
	return f, nil
}

func wrongType(path, want string, got any) error {
	return fmt.Errorf("%s: want %s, got %s", display(path), want, jsonKind(got))
}

// jsonKind names what a JSON value is, for errors.
func jsonKind(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "a bool"
	case string:
		return fmt.Sprintf("the string %q", x)
	case map[string]any:
		return "an object"
	case []any:
		return fmt.Sprintf("an array of %d", len(x))
	}
	return fmt.Sprintf("the number %v", v)
}
