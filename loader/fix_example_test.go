package loader_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/loader"
)

// A host opens a repair plugin when an operator names it: the checks of a
// module version run first, and a file that fails one is never opened.
// Here the file has no .sha256 beside it, so none of its code runs.
func ExampleFixes_Open() {
	fixes, err := loader.NewFixes(loader.FixOptions{})
	if err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "fixes")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "coinfix-1.0.0.so")
	if err := os.WriteFile(path, []byte("\x7fELF..."), 0o600); err != nil {
		log.Fatal(err)
	}

	fp, err := fixes.Open(context.Background(), path)
	if err != nil {
		fmt.Println(errors.Is(err, loader.ErrChecksum))
		return
	}
	var player struct{ Coins int64 } // the game's state type
	c := &abi.Call{Player: 7, State: &player}
	if fp.Fix.Select == nil || fp.Fix.Select(c) {
		fmt.Println(fp.Fix.Apply(c))
	}
	// Output: true
}
