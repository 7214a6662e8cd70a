package loader_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/loader"
)

// A host's main: the preflight check first, then a Loader polling the
// plugin directory, then requests through the current table.
func Example() {
	if loader.IsPreflight() {
		loader.PreflightMain() // this process is a preflight child: check one plugin and exit
	}
	dir, err := os.MkdirTemp("", "plugins")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	l, err := loader.New(loader.Options{Dir: dir, PollInterval: time.Second,
		ProbationWindow: time.Minute, ProbationPanics: 3})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Run(ctx)

	// Per request: one atomic load, then the handler.
	var state struct{ Coins int64 }
	e, ok := l.Current().Lookup("work")
	if !ok {
		fmt.Println("no module handles work yet")
		return
	}
	err = e.Call(&abi.Call{Player: 7, Msg: "work", State: &state})
	var pe *loader.PanicError
	if errors.As(err, &pe) {
		fmt.Println("handler panicked; the player's state is dropped:", pe.Value)
	}
	// Output: no module handles work yet
}

// Hot paths resolve a message once: its index is the same in every table
// the Loader ever stores.
func ExampleTable_Index() {
	l, err := loader.New(loader.Options{Dir: os.TempDir()})
	if err != nil {
		log.Fatal(err)
	}
	if i, ok := l.Current().Index("work"); ok {
		var state struct{ Coins int64 }
		_ = l.Current().At(i).Call(&abi.Call{Msg: "work", State: &state})
	}
	err = l.Current().At(0).Call(&abi.Call{Msg: "work"})
	fmt.Println(errors.Is(err, loader.ErrUnknownMessage))
	// Output: true
}

// Operators move between loaded versions; each is one atomic store.
func ExampleLoader_Rollback() {
	l, err := loader.New(loader.Options{Dir: os.TempDir()})
	if err != nil {
		log.Fatal(err)
	}
	err = l.Rollback("coin")
	fmt.Println(errors.Is(err, loader.ErrNoPrevious))
	for _, v := range l.Versions() {
		fmt.Println(v.Module, v.Version, v.State, v.Reason)
	}
	// Output: true
}
