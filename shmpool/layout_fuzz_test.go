package shmpool_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/hothost/hothost/shmpool"
)

type layoutSeed struct {
	ID   uint64
	Pos  [3]float32
	Inv  [4]struct{ Item, Count uint32 }
	Flag bool
	Z    complex128
}

// FuzzDecodeLayout feeds arbitrary bytes to the stored-layout decoder. It
// must never panic, must refuse with ErrCorrupt, and a layout it accepts
// must keep every field inside its parent: a scalar has its kind's size, an
// array's elements fill exactly its size, a struct's fields end within it.
// Code that converts values by a decoded layout relies on exactly that.
func FuzzDecodeLayout(f *testing.F) {
	for _, v := range []any{layoutSeed{}, [2][3]uint16{}, struct{}{}, struct{ A, B int8 }{}} {
		l, err := shmpool.Describe(reflect.TypeOf(v))
		if err != nil {
			f.Fatal(err)
		}
		b, err := json.Marshal(l)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"type":{"kind":"struct","size":8,"fields":[{"name":"A","offset":4,"type":{"kind":"int64","size":8}}]}}`))
	f.Add([]byte(`{"type":{"kind":"array","size":0,"len":9223372036854775807,"elem":{"kind":"struct","size":0}}}`))
	f.Add([]byte(`{"type":{"kind":"array","size":16,"len":2,"elem":{"kind":"uint64","size":8}}}`))
	f.Add([]byte(`{"type":{"kind":"array","size":8,"len":-1,"elem":{"kind":"uint64","size":8}}}`))
	f.Add([]byte(`{"type":{"kind":"ptr","size":8}}`))
	f.Add([]byte(`null`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := shmpool.DecodeLayout(b)
		if err != nil {
			if !errors.Is(err, shmpool.ErrCorrupt) {
				t.Fatalf("DecodeLayout: %v does not wrap ErrCorrupt", err)
			}
			return
		}
		checkInside(t, &l.Type, "T", 0)
		_ = l.Fingerprint()
		_ = l.String()
		// What was accepted encodes and decodes to the same fingerprint.
		again, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		l2, err := shmpool.DecodeLayout(again)
		if err != nil {
			t.Fatalf("an accepted layout does not decode again: %v\n%s", err, again)
		}
		if l2.Fingerprint() != l.Fingerprint() {
			t.Fatalf("fingerprint changed across a round trip:\n%s", again)
		}
	})
}

var scalarSize = map[shmpool.Kind]uint64{
	shmpool.Bool: 1, shmpool.Int8: 1, shmpool.Uint8: 1, shmpool.Int16: 2, shmpool.Uint16: 2,
	shmpool.Int32: 4, shmpool.Uint32: 4, shmpool.Float32: 4, shmpool.Int64: 8, shmpool.Uint64: 8,
	shmpool.Float64: 8, shmpool.Complex64: 8, shmpool.Complex128: 16,
}

func checkInside(t *testing.T, ty *shmpool.Type, path string, depth int) {
	t.Helper()
	if depth > 100 {
		t.Fatalf("%s: decoded layout nested deeper than 100", path)
	}
	switch ty.Kind {
	case shmpool.Array:
		if ty.Elem == nil || ty.Len < 0 {
			t.Fatalf("%s: array without element or negative length accepted", path)
		}
		if ty.Elem.Size != 0 && uint64(ty.Len) > ty.Size/ty.Elem.Size || ty.Elem.Size*uint64(ty.Len) != ty.Size {
			t.Fatalf("%s: %d x %d bytes do not make %d", path, ty.Len, ty.Elem.Size, ty.Size)
		}
		checkInside(t, ty.Elem, path+"[]", depth+1)
	case shmpool.Struct:
		for _, f := range ty.Fields {
			if f.Offset > ty.Size || f.Type.Size > ty.Size-f.Offset {
				t.Fatalf("%s.%s: [%d, +%d) outside a struct of %d bytes", path, f.Name, f.Offset, f.Type.Size, ty.Size)
			}
			checkInside(t, &f.Type, path+"."+f.Name, depth+1)
		}
	default:
		n, ok := scalarSize[ty.Kind]
		if !ok || n != ty.Size {
			t.Fatalf("%s: kind %q of size %d accepted", path, ty.Kind, ty.Size)
		}
	}
}
