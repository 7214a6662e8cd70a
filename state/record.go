package state

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"github.com/hothost/hothost/shmpool"
)

// record is what one pool slot holds. The header is 16 bytes, so a 256-byte
// T costs 272 bytes of slot (plus shmpool's 8-byte state word).
//
// Seq counts commits (two per commit, so it is always even; an odd Seq is
// corruption, or a record written by an older build that set it odd while
// writing); Sum is the CRC-32C of every byte after it (ID, Val and any
// trailing padding, which is always zero), which lets recovery and
// snapshot readers prove a record whole without trusting anything else.
// Crash atomicity comes from the lane's undo record, not from these.
type record[T any] struct {
	Seq uint32
	Sum uint32
	ID  uint64
	Val T
}

// recHeader is the size of record's header; Val starts there. T's
// alignment is at most 8 (shmpool refuses more), so no padding sits between.
const recHeader = 16

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func recordBytes[T any](r *record[T]) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(r)), unsafe.Sizeof(*r))
}

// recordValType checks that a stored layout is one of this package's
// records (Seq, Sum, ID, Val at the offsets record gives them) and returns
// the layout of its Val. A segment or snapshot of anything else is refused.
func recordValType(l *shmpool.Layout) (*shmpool.Type, error) {
	t := &l.Type
	want := []struct {
		name string
		off  uint64
		kind shmpool.Kind
	}{{"Seq", 0, shmpool.Uint32}, {"Sum", 4, shmpool.Uint32}, {"ID", 8, shmpool.Uint64}}
	if t.Kind != shmpool.Struct || len(t.Fields) != 4 {
		return nil, fmt.Errorf("%w: stored type %s is not a state record", ErrIncompatible, t.Name)
	}
	for i, w := range want {
		f := &t.Fields[i]
		if f.Name != w.name || f.Offset != w.off || f.Type.Kind != w.kind {
			return nil, fmt.Errorf("%w: stored type %s: field %d is %s %s@%d, a state record has %s %s@%d",
				ErrIncompatible, t.Name, i, f.Name, f.Type.Kind, f.Offset, w.name, w.kind, w.off)
		}
	}
	if v := &t.Fields[3]; v.Name != "Val" || v.Offset != recHeader {
		return nil, fmt.Errorf("%w: stored type %s has no Val at offset %d", ErrIncompatible, t.Name, recHeader)
	}
	return &t.Fields[3].Type, nil
}

// valLayout is the layout of T alone, taken from a record layout: the
// layout whose Fingerprint keys Options.Migrations.
func valLayout(rec *shmpool.Layout, val *shmpool.Type) *shmpool.Layout {
	return &shmpool.Layout{GOARCH: rec.GOARCH, BigEndian: rec.BigEndian, Type: *val}
}

// Record is one player's stored value read through the layout it was
// stored with, field by field: the old value a MigrateFunc receives
// (Erlang's code_change gets the old state the same way), and what
// ReadSnapshot hands out.
//
// A path names a field the way Go code would: "Coins", "Pos.X",
// "Items[3].Count"; "" is the whole value. Each getter returns false when
// the path does not exist or the field's kind does not convert without
// loss (Int of a uint64 above MaxInt64, Float of an integer).
type Record interface {
	// ID is the player's id.
	ID() uint64
	// Type is the stored layout of the value.
	Type() *shmpool.Type
	// Has reports whether path names a field.
	Has(path string) bool
	// Int reads a signed or unsigned integer that fits in an int64.
	Int(path string) (int64, bool)
	// Uint reads an unsigned integer, or a non-negative signed one.
	Uint(path string) (uint64, bool)
	// Float reads a float32 or float64.
	Float(path string) (float64, bool)
	// Bool reads a bool.
	Bool(path string) (bool, bool)
	// Bytes returns a copy of the field's raw bytes (for [N]byte names
	// and anything the other getters do not cover).
	Bytes(path string) ([]byte, bool)
	// Value decodes the field into bool, int64, uint64, float64, a string
	// for complex numbers, []any for arrays and map[string]any for structs.
	Value(path string) (any, bool)
}

// view implements Record over a value's bytes b laid out as t, in this
// machine's byte order (layouts of another byte order are refused before a
// view is made).
type view struct {
	t  *shmpool.Type
	b  []byte
	id uint64
}

func (v view) ID() uint64          { return v.id }
func (v view) Type() *shmpool.Type { return v.t }

// find resolves path to the field's type and bytes. It trusts t only as
// far as shmpool.DecodeLayout checked it (offsets and sizes inside the
// value), and checks b's length itself.
func (v view) find(path string) (*shmpool.Type, []byte, bool) {
	t, b := v.t, v.b
	if uint64(len(b)) < t.Size {
		return nil, nil, false
	}
	b = b[:t.Size]
	for path != "" {
		if path[0] == '[' {
			end := strings.IndexByte(path, ']')
			if end < 0 || t.Kind != shmpool.Array || t.Elem == nil {
				return nil, nil, false
			}
			i, err := strconv.Atoi(path[1:end])
			if err != nil || i < 0 || i >= t.Len {
				return nil, nil, false
			}
			off := uint64(i) * t.Elem.Size
			t, b = t.Elem, b[off:off+t.Elem.Size]
			path = path[end+1:]
			continue
		}
		path = strings.TrimPrefix(path, ".")
		n := strings.IndexAny(path, ".[")
		if n < 0 {
			n = len(path)
		}
		name := path[:n]
		path = path[n:]
		if t.Kind != shmpool.Struct {
			return nil, nil, false
		}
		found := false
		for i := range t.Fields {
			if f := &t.Fields[i]; f.Name == name {
				t, b = &f.Type, b[f.Offset:f.Offset+f.Type.Size]
				found = true
				break
			}
		}
		if !found {
			return nil, nil, false
		}
	}
	return t, b, true
}

func (v view) Has(path string) bool { _, _, ok := v.find(path); return ok }

func (v view) Int(path string) (int64, bool) {
	t, b, ok := v.find(path)
	if !ok {
		return 0, false
	}
	if i, signed, ok := readInt(t.Kind, b); ok {
		if !signed && uint64(i) > math.MaxInt64 {
			return 0, false
		}
		return i, true
	}
	return 0, false
}

func (v view) Uint(path string) (uint64, bool) {
	t, b, ok := v.find(path)
	if !ok {
		return 0, false
	}
	if i, signed, ok := readInt(t.Kind, b); ok {
		if signed && i < 0 {
			return 0, false
		}
		return uint64(i), true
	}
	return 0, false
}

func (v view) Float(path string) (float64, bool) {
	t, b, ok := v.find(path)
	if !ok {
		return 0, false
	}
	switch t.Kind {
	case shmpool.Float32:
		return float64(math.Float32frombits(ne.Uint32(b))), true
	case shmpool.Float64:
		return math.Float64frombits(ne.Uint64(b)), true
	}
	return 0, false
}

func (v view) Bool(path string) (bool, bool) {
	t, b, ok := v.find(path)
	if !ok || t.Kind != shmpool.Bool {
		return false, false
	}
	return b[0] != 0, true
}

func (v view) Bytes(path string) ([]byte, bool) {
	_, b, ok := v.find(path)
	if !ok {
		return nil, false
	}
	return append([]byte(nil), b...), true
}

func (v view) Value(path string) (any, bool) {
	t, b, ok := v.find(path)
	if !ok {
		return nil, false
	}
	return decodeValue(t, b, 0, false), true
}

var ne = binary.NativeEndian

// readInt reads an integer of kind k from b. The int64 holds the bits of a
// uint64 when signed is false.
func readInt(k shmpool.Kind, b []byte) (v int64, signed, ok bool) {
	switch k {
	case shmpool.Int8:
		return int64(int8(b[0])), true, true
	case shmpool.Int16:
		return int64(int16(ne.Uint16(b))), true, true
	case shmpool.Int32:
		return int64(int32(ne.Uint32(b))), true, true
	case shmpool.Int64:
		return int64(ne.Uint64(b)), true, true
	case shmpool.Uint8:
		return int64(b[0]), false, true
	case shmpool.Uint16:
		return int64(ne.Uint16(b)), false, true
	case shmpool.Uint32:
		return int64(ne.Uint32(b)), false, true
	case shmpool.Uint64:
		return int64(ne.Uint64(b)), false, true
	}
	return 0, false, false
}

// decodeValue turns a value into plain Go values for the admin API (and
// JSON): structs become maps keyed by field name, arrays slices. With
// text set, a byte array holding text becomes a string (see byteText).
func decodeValue(t *shmpool.Type, b []byte, depth int, text bool) any {
	if depth > 64 || uint64(len(b)) < t.Size {
		return nil
	}
	switch t.Kind {
	case shmpool.Bool:
		return b[0] != 0
	case shmpool.Float32:
		return float64(math.Float32frombits(ne.Uint32(b)))
	case shmpool.Float64:
		return math.Float64frombits(ne.Uint64(b))
	case shmpool.Complex64:
		return fmt.Sprint(complex(math.Float32frombits(ne.Uint32(b)), math.Float32frombits(ne.Uint32(b[4:]))))
	case shmpool.Complex128:
		return fmt.Sprint(complex(math.Float64frombits(ne.Uint64(b)), math.Float64frombits(ne.Uint64(b[8:]))))
	case shmpool.Array:
		if t.Elem == nil || t.Elem.Size == 0 { // a [n]struct{} holds nothing; n may be anything
			return []any{}
		}
		if text && t.Elem.Kind == shmpool.Uint8 {
			if str, ok := byteText(b[:t.Size]); ok {
				return str
			}
		}
		out := make([]any, t.Len)
		for i := range out {
			off := uint64(i) * t.Elem.Size
			out[i] = decodeValue(t.Elem, b[off:off+t.Elem.Size], depth+1, text)
		}
		return out
	case shmpool.Struct:
		out := make(map[string]any, len(t.Fields))
		for i := range t.Fields {
			f := &t.Fields[i]
			out[f.Name] = decodeValue(&f.Type, b[f.Offset:f.Offset+f.Type.Size], depth+1, text)
		}
		return out
	}
	if v, signed, ok := readInt(t.Kind, b); ok {
		if signed {
			return v
		}
		return uint64(v)
	}
	return nil
}

// byteText reads a [N]byte field as the text a game stores in it (a name,
// NUL-padded): the bytes up to the trailing NULs, if they are valid UTF-8
// and every rune is printable (a space included; a NUL, tab or other
// control character inside is not). An all-NUL array is "". Anything else
// (a hash, packed counters) is not text, and is shown as numbers.
func byteText(b []byte) (string, bool) {
	b = bytes.TrimRight(b, "\x00")
	if !utf8.Valid(b) {
		return "", false
	}
	for _, r := range string(b) {
		if !unicode.IsPrint(r) {
			return "", false
		}
	}
	return string(b), true
}
