package state_test

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/hothost/hothost/state"
)

func ExampleSetTxCommitHook() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	s, _, _ := state.Open[Account](state.Options{Name: "accounts", ShmDir: dir, Capacity: 10,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer s.Close()
	s.Ensure(1)
	s.Ensure(2)

	// A crash test's seam would kill the process at one of these points.
	state.SetTxCommitHook(func(i int) { fmt.Println("commit point", i) })
	defer state.SetTxCommitHook(nil)
	s.RunMulti([]uint64{1, 2}, nil, func(vs []*Account) error {
		vs[0].Coins -= 5 // a gift of 5 coins from 1 to 2
		vs[1].Coins += 5
		return nil
	})
	// Output:
	// commit point 0
	// commit point 1
	// commit point 2
}
