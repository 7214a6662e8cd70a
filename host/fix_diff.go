package host

import (
	"bytes"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"sort"
	"strconv"
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// A fix's effect is shown field by field: the leaf fields of the player's
// state in which two values differ, named the way Go code names them
// ("Coins", "Inventory[3].Count") with their values before and after. The
// walk follows T's fields, which are the stored layout's: the store keeps
// T's layout (state.Store.Layout) and migrates the segment to it at start.

// fieldChange is one field a fix changes.
type fieldChange struct {
	Field  string `json:"field"`
	Before any    `json:"before"`
	After  any    `json:"after"`
}

func (c fieldChange) String() string {
	return fmt.Sprintf("%s: %s -> %s", c.Field, showValue(c.Before), showValue(c.After))
}

func showValue(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}

// diffValues lists the leaf fields in which a and b differ, in field
// order. Floats compare by their bits, so a NaN equals itself and a value
// is never "changed" into itself; padding bytes are not compared.
func diffValues[T any](a, b *T) []fieldChange {
	leaves := diffLeaves(a, b)
	out := make([]fieldChange, len(leaves))
	for i, l := range leaves {
		out[i] = l.change
	}
	return out
}

// leaf is one leaf field in which two values differ, and where its bytes
// are in a T: a [N]byte holding text is one leaf.
type leaf struct {
	change    fieldChange
	off, size uintptr
}

func diffLeaves[T any](a, b *T) []leaf {
	var out []leaf
	va := reflect.ValueOf(a).Elem()
	diffValue(va, reflect.ValueOf(b).Elem(), "", va.UnsafeAddr(), &out)
	return out
}

func diffValue(a, b reflect.Value, path string, base uintptr, out *[]leaf) {
	add := func(before, after any) {
		*out = append(*out, leaf{change: fieldChange{Field: orValue(path), Before: before, After: after},
			off: a.UnsafeAddr() - base, size: a.Type().Size()})
	}
	switch a.Kind() {
	case reflect.Struct:
		t := a.Type()
		for i := range t.NumField() {
			name := t.Field(i).Name
			if path != "" {
				name = path + "." + name
			}
			diffValue(a.Field(i), b.Field(i), name, base, out)
		}
	case reflect.Array:
		if a.Type().Elem().Kind() == reflect.Uint8 {
			ta, okA := byteText(a)
			tb, okB := byteText(b)
			if okA && okB {
				if ta != tb {
					add(ta, tb)
				}
				return
			}
		}
		for i := range a.Len() {
			diffValue(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i), base, out)
		}
	default:
		if !sameLeaf(a, b) {
			add(leafValue(a), leafValue(b))
		}
	}
}

// Where undo finds a player.
const (
	undoRestore  = iota // the fix's fields hold what the fix wrote: put them back
	undoAlready         // they hold what they held before the fix
	undoConflict        // some changed since the fix (listed)
)

// undoFields puts back into cur the fields the fix changed (from before
// to after), and leaves every other field as it is now: a login or a
// reward since the fix is kept. A field the fix changed that holds
// neither what the fix wrote nor what it held before was changed since: a
// conflict, listed with what changed, and left alone unless force, which
// puts the fix's fields back anyway.
func undoFields[T any](cur, before, after *T, force bool) (int, []fieldChange) {
	fixed := diffLeaves(before, after)
	c, b, a := bytesOf(cur), bytesOf(before), bytesOf(after)
	var changed []leaf // fields the fix changed that changed again since
	restore := false
	for _, l := range fixed {
		lo, hi := l.off, l.off+l.size
		switch {
		case bytes.Equal(c[lo:hi], a[lo:hi]):
			restore = true
		case !bytes.Equal(c[lo:hi], b[lo:hi]):
			changed = append(changed, l)
		}
	}
	var conflicts []fieldChange
	for _, s := range diffLeaves(after, cur) {
		for _, l := range changed {
			if s.off < l.off+l.size && l.off < s.off+s.size {
				conflicts = append(conflicts, s.change)
				break
			}
		}
	}
	switch {
	case len(changed) > 0 && !force:
		return undoConflict, conflicts
	case len(changed) == 0 && !restore:
		return undoAlready, nil
	}
	for _, l := range fixed {
		copy(c[l.off:l.off+l.size], b[l.off:l.off+l.size])
	}
	return undoRestore, conflicts
}

// bytesOf is v's memory. T is pointer-free (the state store refuses any
// other), so its bytes are its whole value.
func bytesOf[T any](v *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
}

// orValue names a T that is not a struct.
func orValue(path string) string {
	if path == "" {
		return "value"
	}
	return path
}

func sameLeaf(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() == b.Int()
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return a.Uint() == b.Uint()
	case reflect.Float32, reflect.Float64:
		return math.Float64bits(a.Float()) == math.Float64bits(b.Float())
	case reflect.Complex64, reflect.Complex128:
		x, y := a.Complex(), b.Complex()
		return math.Float64bits(real(x)) == math.Float64bits(real(y)) && math.Float64bits(imag(x)) == math.Float64bits(imag(y))
	case reflect.Bool:
		return a.Bool() == b.Bool()
	}
	return true // the state layer admits no other kinds
}

// leafValue is a leaf as JSON carries it: a float JSON cannot hold (NaN,
// ±Inf) and a complex number become strings.
func leafValue(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int()
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return v.Uint()
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f
		}
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case reflect.Complex64, reflect.Complex128:
		return fmt.Sprint(v.Complex())
	case reflect.Bool:
		return v.Bool()
	}
	return nil
}

// byteText reads a byte array as the text a game keeps in it (a name,
// NUL-padded), as the admin API's player view shows it: printable UTF-8
// up to the trailing NULs. Other bytes are compared one by one.
func byteText(v reflect.Value) (string, bool) {
	b := make([]byte, v.Len())
	for i := range b {
		b[i] = byte(v.Index(i).Uint())
	}
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

// fieldTotal sums one field over the players a fix changes: how many, and
// for an integer field the sum before and after ("Coins: 5000 players,
// 260000000 -> 26000000").
type fieldTotal struct {
	Field   string   `json:"field"`
	Players int      `json:"players"`
	Before  *big.Int `json:"before_sum,omitempty"`
	After   *big.Int `json:"after_sum,omitempty"`
}

func (t fieldTotal) String() string {
	if t.Before == nil {
		return fmt.Sprintf("%s: %d players", t.Field, t.Players)
	}
	return fmt.Sprintf("%s: %d players, total %s -> %s", t.Field, t.Players, t.Before, t.After)
}

// fieldTotals accumulates fieldTotal per field.
type fieldTotals map[string]*fieldTotal

func (ft fieldTotals) add(changes []fieldChange) {
	for _, c := range changes {
		t := ft[c.Field]
		if t == nil {
			t = &fieldTotal{Field: c.Field}
			if isInt(c.Before) && isInt(c.After) {
				t.Before, t.After = new(big.Int), new(big.Int)
			}
			ft[c.Field] = t
		}
		t.Players++
		if t.Before != nil && isInt(c.Before) && isInt(c.After) {
			t.Before.Add(t.Before, bigOf(c.Before))
			t.After.Add(t.After, bigOf(c.After))
		}
	}
}

// list is the totals in field name order.
func (ft fieldTotals) list() []fieldTotal {
	out := make([]fieldTotal, 0, len(ft))
	for _, t := range ft {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}

func isInt(v any) bool {
	switch v.(type) {
	case int64, uint64:
		return true
	}
	return false
}

func bigOf(v any) *big.Int {
	switch x := v.(type) {
	case int64:
		return big.NewInt(x)
	case uint64:
		return new(big.Int).SetUint64(x)
	}
	return new(big.Int)
}
