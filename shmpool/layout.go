package shmpool

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"strings"
)

// Kind names the shape of a value stored in a segment. Kinds are stored as
// strings so that a stored Layout stays readable by any later version.
type Kind string

// The kinds a pool may hold: fixed-size values without pointers.
const (
	Bool       Kind = "bool"
	Int8       Kind = "int8"
	Int16      Kind = "int16"
	Int32      Kind = "int32"
	Int64      Kind = "int64"
	Uint8      Kind = "uint8"
	Uint16     Kind = "uint16"
	Uint32     Kind = "uint32"
	Uint64     Kind = "uint64"
	Float32    Kind = "float32"
	Float64    Kind = "float64"
	Complex64  Kind = "complex64"
	Complex128 Kind = "complex128"
	Array      Kind = "array"
	Struct     Kind = "struct"
)

// Type describes the in-memory layout of a pointer-free Go type: enough to
// fingerprint it and to convert a value of it, field by field, into another
// layout (the state package's migrations).
type Type struct {
	Kind   Kind    `json:"kind"`
	Name   string  `json:"name,omitempty"` // Go type name, for messages only
	Size   uint64  `json:"size"`
	Align  uint64  `json:"align"`
	Len    int     `json:"len,omitempty"`    // Array
	Elem   *Type   `json:"elem,omitempty"`   // Array
	Fields []Field `json:"fields,omitempty"` // Struct
}

// Field is one field of a Struct Type.
type Field struct {
	Name   string `json:"name"`
	Offset uint64 `json:"offset"`
	Type   Type   `json:"type"`
}

// Layout is the stored description of a pool's T together with the machine
// facts that change its bytes.
type Layout struct {
	GOARCH    string `json:"goarch"`
	BigEndian bool   `json:"big_endian"`
	Type      Type   `json:"type"`
}

var scalarKinds = map[reflect.Kind]Kind{
	reflect.Bool: Bool, reflect.Int8: Int8, reflect.Int16: Int16, reflect.Int32: Int32,
	reflect.Int64: Int64, reflect.Uint8: Uint8, reflect.Uint16: Uint16, reflect.Uint32: Uint32,
	reflect.Uint64: Uint64, reflect.Float32: Float32, reflect.Float64: Float64,
	reflect.Complex64: Complex64, reflect.Complex128: Complex128,
}

// Describe walks t and returns its Layout. It refuses, with ErrPointer and the
// path of the first offending field (Player.Inventory[].Name: string), any
// type that holds a pointer, string, slice, map, interface, chan or func, and
// also int, uint and uintptr, whose size depends on the platform.
func Describe(t reflect.Type) (*Layout, error) {
	if t == nil {
		return nil, fmt.Errorf("%w: nil type", ErrPointer)
	}
	typ, err := describe(t, t.Name())
	if err != nil {
		return nil, err
	}
	return &Layout{GOARCH: runtime.GOARCH, BigEndian: bigEndian(), Type: typ}, nil
}

func describe(t reflect.Type, path string) (Type, error) {
	out := Type{Name: t.String(), Size: uint64(t.Size()), Align: uint64(t.Align())}
	if k, ok := scalarKinds[t.Kind()]; ok {
		out.Kind = k
		return out, nil
	}
	switch t.Kind() {
	case reflect.Array:
		elem, err := describe(t.Elem(), path+"[]")
		if err != nil {
			return Type{}, err
		}
		out.Kind, out.Len, out.Elem = Array, t.Len(), &elem
		return out, nil
	case reflect.Struct:
		out.Kind = Struct
		for i := range t.NumField() {
			f := t.Field(i)
			ft, err := describe(f.Type, path+"."+f.Name)
			if err != nil {
				return Type{}, err
			}
			out.Fields = append(out.Fields, Field{Name: f.Name, Offset: uint64(f.Offset), Type: ft})
		}
		return out, nil
	case reflect.Int, reflect.Uint, reflect.Uintptr:
		return Type{}, fmt.Errorf("%w: %s: %s has a platform-dependent size; use a sized integer", ErrPointer, path, t)
	default:
		return Type{}, fmt.Errorf("%w: %s: %s", ErrPointer, path, t)
	}
}

// Fingerprint is a SHA-256 over every field's name, kind, offset and size
// (recursively), array lengths, the type's size and alignment, GOARCH and
// byte order. Go type names are left out: renaming a type does not move a
// byte. Reordering two fields changes it.
func (l *Layout) Fingerprint() [32]byte {
	h := sha256.New()
	fmt.Fprintf(h, "shmpool-layout-v1 %s big=%t\n", l.GOARCH, l.BigEndian)
	writeType(h, &l.Type)
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

func writeType(w interface{ Write([]byte) (int, error) }, t *Type) {
	fmt.Fprintf(w, "(%s %d %d %d", t.Kind, t.Size, t.Align, t.Len)
	if t.Elem != nil {
		writeType(w, t.Elem)
	}
	for i := range t.Fields {
		f := &t.Fields[i]
		fmt.Fprintf(w, " %q@%d:", f.Name, f.Offset)
		writeType(w, &f.Type)
	}
	fmt.Fprint(w, ")")
}

// String renders the layout one field per line, for diffs and messages.
func (l *Layout) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s, size %d, align %d)\n", l.Type.Name, l.GOARCH, l.Type.Size, l.Type.Align)
	var walk func(t *Type, path string)
	walk = func(t *Type, path string) {
		for i := range t.Fields {
			f := &t.Fields[i]
			p := path + "." + f.Name
			fmt.Fprintf(&b, "  %-32s %-10s offset %-5d size %d", strings.TrimPrefix(p, "."), kindLabel(&f.Type), f.Offset, f.Type.Size)
			b.WriteByte('\n')
			if f.Type.Kind == Struct {
				walk(&f.Type, p)
			}
			if f.Type.Kind == Array && f.Type.Elem != nil && f.Type.Elem.Kind == Struct {
				walk(f.Type.Elem, p+"[]")
			}
		}
	}
	walk(&l.Type, "")
	return b.String()
}

func kindLabel(t *Type) string {
	if t.Kind == Array && t.Elem != nil {
		return fmt.Sprintf("[%d]%s", t.Len, kindLabel(t.Elem))
	}
	return string(t.Kind)
}

// maxLayoutDepth bounds the nesting accepted from a stored layout, so a
// corrupt description cannot exhaust the stack.
const maxLayoutDepth = 64

// DecodeLayout parses a stored layout description and checks that it is
// self-consistent (sizes, offsets and lengths add up), so that code converting
// values by it never reads outside a value. It is safe on arbitrary input.
func DecodeLayout(b []byte) (*Layout, error) {
	var l Layout
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("%w: stored layout: %v", ErrCorrupt, err)
	}
	if err := checkType(&l.Type, 0, "T"); err != nil {
		return nil, fmt.Errorf("%w: stored layout: %v", ErrCorrupt, err)
	}
	return &l, nil
}

func checkType(t *Type, depth int, path string) error {
	if depth > maxLayoutDepth {
		return fmt.Errorf("%s: nested deeper than %d", path, maxLayoutDepth)
	}
	switch t.Kind {
	case Bool, Int8, Uint8:
		return wantSize(t, path, 1)
	case Int16, Uint16:
		return wantSize(t, path, 2)
	case Int32, Uint32, Float32:
		return wantSize(t, path, 4)
	case Int64, Uint64, Float64, Complex64:
		return wantSize(t, path, 8)
	case Complex128:
		return wantSize(t, path, 16)
	case Array:
		if t.Elem == nil || t.Len < 0 {
			return fmt.Errorf("%s: array without element or with negative length", path)
		}
		if err := checkType(t.Elem, depth+1, path+"[]"); err != nil {
			return err
		}
		if t.Elem.Size != 0 && uint64(t.Len) > t.Size/t.Elem.Size || t.Elem.Size*uint64(t.Len) != t.Size {
			return fmt.Errorf("%s: %d elements of size %d do not make size %d", path, t.Len, t.Elem.Size, t.Size)
		}
		return nil
	case Struct:
		for i := range t.Fields {
			f := &t.Fields[i]
			if err := checkType(&f.Type, depth+1, path+"."+f.Name); err != nil {
				return err
			}
			if f.Offset > t.Size || f.Type.Size > t.Size-f.Offset {
				return fmt.Errorf("%s.%s: offset %d size %d outside struct of size %d", path, f.Name, f.Offset, f.Type.Size, t.Size)
			}
		}
		return nil
	default:
		return fmt.Errorf("%s: unknown kind %q", path, t.Kind)
	}
}

func wantSize(t *Type, path string, n uint64) error {
	if t.Size != n {
		return fmt.Errorf("%s: %s of size %d, want %d", path, t.Kind, t.Size, n)
	}
	return nil
}

func bigEndian() bool {
	return binary.NativeEndian.Uint16([]byte{0, 1}) == 1
}
