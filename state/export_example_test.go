package state_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/hothost/hothost/state"
)

// AccountV2 is Account as a later build keeps it: Gems added in front.
type AccountV2 struct {
	Gems  int32
	Coins int64
	Level int32
	Name  [16]byte
}

func openQuiet[T any](dir, name string) *state.Store[T] {
	s, _, err := state.Open[T](state.Options{Name: name, ShmDir: dir, Capacity: 10,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		panic(err)
	}
	return s
}

func ExampleStore_Export() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	s := openQuiet[Account](dir, "accounts")
	defer s.Close()
	s.Ensure(42)
	s.Update(42, func(a *Account) error { a.Coins, a.Level = 250, 3; copy(a.Name[:], "Ada"); return nil })

	doc, _ := s.Export(42)
	b, _ := json.Marshal(doc.State)
	fmt.Println(doc.Format, doc.ID)
	fmt.Println(string(b))
	// Output:
	// hothost-player/1 42
	// {"Coins":250,"Level":3,"Name":"Ada"}
}

func ExampleStore_Import() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	old := openQuiet[Account](dir, "shard-a")
	defer old.Close()
	old.Ensure(42)
	old.Update(42, func(a *Account) error { a.Coins = 250; return nil })
	doc, _ := old.Export(42)

	// Another shard, running a later layout: the value moves by field name.
	s := openQuiet[AccountV2](dir, "shard-b")
	defer s.Close()
	rep, err := s.Import(doc, 0, false)
	if err != nil {
		fmt.Println(err)
		return
	}
	v, _ := s.Get(42)
	fmt.Println(rep.Created, v.Coins, v.Gems)
	for _, c := range rep.Changes {
		fmt.Println(c)
	}
	_, err = s.Import(doc, 0, false)
	fmt.Println(errors.Is(err, state.ErrExists))
	// Output:
	// true 250 0
	// + Gems int32 added (starts at zero)
	// true
}

func ExampleDecodePlayerDoc() {
	_, err := state.DecodePlayerDoc(strings.NewReader(`{"format": "hothost-player/1", "id": 7,`))
	fmt.Println(errors.Is(err, state.ErrBadDocument))
	fmt.Println(err)
	_, err = state.DecodePlayerDoc(bytes.NewReader([]byte(`{"format": "hothost-player/1", "id": 7, "colour": "blue"}`)))
	fmt.Println(err)
	// Output:
	// true
	// state: bad player document: malformed JSON: unexpected EOF
	// state: bad player document: malformed JSON: json: unknown field "colour"
}
