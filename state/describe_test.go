package state

import (
	"reflect"
	"testing"
	"unsafe"
)

type Badge struct {
	Label [8]uint8
	Level uint8
}

type Named struct {
	Name   [24]byte
	Badges [2]Badge
	Small  [3]int8 // not bytes: always numbers
}

func TestDescribeByteArraysAsText(t *testing.T) {
	s, _ := mustOpen[Player](t, testOptions(t, 16))
	defer s.Close()
	names := []struct {
		name  string
		bytes []byte
		want  any // a string, or nil for "numbers"
	}{
		{"ascii", []byte("Ada"), "Ada"},
		{"utf-8", []byte("Zoë Ω"), "Zoë Ω"},
		{"fills the array", []byte("0123456789abcdef"), "0123456789abcdef"},
		{"all NUL", nil, ""},
		{"invalid utf-8", []byte{'A', 0xff, 'b'}, nil},
		{"NUL inside", []byte("Ad\x00a"), nil},
		{"control char", []byte("Ada\n"), nil},
		{"binary", []byte{1, 2, 3, 200}, nil},
	}
	for i, c := range names {
		id := uint64(i + 1)
		s.Ensure(id)
		if err := s.Update(id, func(p *Player) error { copy(p.Name[:], c.bytes); p.Coins = 7; return nil }); err != nil {
			t.Fatal(err)
		}
		m, err := s.Describe(id)
		if err != nil {
			t.Fatal(err)
		}
		got := m["Name"]
		if c.want != nil {
			if got != c.want {
				t.Errorf("%s: Describe Name = %#v, want %q", c.name, got, c.want)
			}
		} else {
			var name [16]byte
			copy(name[:], c.bytes)
			want := make([]any, len(name))
			for j, b := range name {
				want[j] = uint64(b)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: Describe Name = %#v, want the 16 numbers %v", c.name, got, want)
			}
		}
		// The rest of the value is decoded as before.
		if m["Coins"] != int64(7) {
			t.Errorf("%s: Coins = %#v", c.name, m["Coins"])
		}
		if inv, ok := m["Inv"].([]any); !ok || len(inv) != 24 {
			t.Errorf("%s: Inv = %#v", c.name, m["Inv"])
		}
	}
}

// Byte arrays nested in structs and arrays get the same treatment; other
// small integer arrays never do; Record.Value (what a MigrateFunc reads)
// keeps giving numbers.
func TestDescribeNestedByteText(t *testing.T) {
	s, _ := mustOpen[Named](t, testOptions(t, 4))
	defer s.Close()
	s.Ensure(1)
	s.Update(1, func(n *Named) error {
		copy(n.Name[:], "Grace Hopper")
		copy(n.Badges[0].Label[:], "admiral")
		n.Badges[0].Level = 'A'
		n.Badges[1].Label = [8]uint8{0xc3, 0x28} // invalid UTF-8
		n.Small = [3]int8{'H', 'i', 0}
		return nil
	})
	m, err := s.Describe(1)
	if err != nil {
		t.Fatal(err)
	}
	badges := m["Badges"].([]any)
	b0, b1 := badges[0].(map[string]any), badges[1].(map[string]any)
	if m["Name"] != "Grace Hopper" || b0["Label"] != "admiral" || b0["Level"] != uint64('A') {
		t.Errorf("Describe = %v", m)
	}
	if l, ok := b1["Label"].([]any); !ok || len(l) != 8 || l[0] != uint64(0xc3) {
		t.Errorf("invalid UTF-8 label = %#v, want numbers", b1["Label"])
	}
	if sm, ok := m["Small"].([]any); !ok || sm[0] != int64('H') {
		t.Errorf("[3]int8 = %#v, want numbers", m["Small"])
	}
	rec := view{t: &s.Layout().Type, b: valueBytes(t, s, 1)}
	if v, ok := rec.Value("Name"); !ok || reflect.TypeOf(v) != reflect.TypeOf([]any{}) {
		t.Errorf("Record.Value(Name) = %#v, want []any as documented", v)
	}
}

func valueBytes(t *testing.T, s *Store[Named], id uint64) []byte {
	t.Helper()
	v, err := s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&v)), unsafe.Sizeof(v))...)
}
