package loader_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/loader"
)

// greet is a module linked into the example binary in two versions, so the
// examples need no plugin build.
func greet(v string) *abi.Module {
	return &abi.Module{Name: "greet", Version: v, ABI: ">= 1.0", Handlers: map[string]abi.Handler{
		"hello": func(c *abi.Call) error { c.Reply("hello from %s", v); return nil },
	}}
}

// exampleOptions are a host's options with the history in its data dir.
func exampleOptions(dataDir string) loader.Options {
	return loader.Options{Dir: dataDir, HistoryFile: filepath.Join(dataDir, "versions.json"),
		Logger: slog.New(slog.DiscardHandler), Static: []*abi.Module{greet("1.0.0"), greet("1.1.0")}}
}

// A host's hang watchdog takes a version out of service; the decision
// survives a restart (a new Loader on the same history file).
func ExampleLoader_MarkBad() {
	dir, err := os.MkdirTemp("", "hothost-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	l, err := loader.New(exampleOptions(dir))
	if err != nil {
		log.Fatal(err)
	}
	if err := l.MarkBad("greet", "1.1.0", "greet 1.1.0 hello ran 2s for player 7"); err != nil {
		log.Fatal(err)
	}
	fmt.Println("serving", l.Current().Modules()["greet"])

	restarted, err := loader.New(exampleOptions(dir))
	if err != nil {
		log.Fatal(err)
	}
	if err := restarted.Poll(context.Background()); err != nil {
		log.Fatal(err)
	}
	fmt.Println("after restart, serving", restarted.Current().Modules()["greet"])
	for _, v := range restarted.Versions() {
		fmt.Printf("%s %s: %s\n", v.Version, v.State, v.Reason)
	}
	// Output:
	// serving 1.0.0
	// after restart, serving 1.0.0
	// 1.0.0 active: restored: 1.1.0 was marked bad
	// 1.1.0 bad: greet 1.1.0 hello ran 2s for player 7; restored 1.0.0
}

// At start, before its first Poll, a host attributes the crash that ended
// the previous process. A crash within the probation window of the
// version's activation quarantines it at once.
func ExampleLoader_RecordCrash() {
	dir, err := os.MkdirTemp("", "hothost-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	l, err := loader.New(exampleOptions(dir))
	if err != nil {
		log.Fatal(err)
	}
	quarantined, err := l.RecordCrash("greet", "1.1.0", "host died: fatal error: stack overflow in greet 1.1.0 hello", time.Now())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("quarantined:", quarantined, "serving:", l.Current().Modules()["greet"])
	// Output: quarantined: true serving: 1.0.0
}

// The runtime's fatal report names each function by its package path, and
// a plugin's package path is unique per build: a frame names its version.
func ExampleLoader_VersionByPluginPath() {
	dir, err := os.MkdirTemp("", "hothost-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	l, err := loader.New(exampleOptions(dir))
	if err != nil {
		log.Fatal(err)
	}
	frame := "hothostplugin/coin_5_0_3_ab12cd34ef567890.work(0xc000123456)"
	fn, _, _ := strings.Cut(frame, "(")
	if module, version, ok := l.VersionByPluginPath(fn); ok {
		fmt.Println("crashed in", module, version)
	} else {
		fmt.Println("no version in the history was built as", fn)
	}
	// Output: no version in the history was built as hothostplugin/coin_5_0_3_ab12cd34ef567890.work
}

// A damaged history file never stops the start: it is moved aside and the
// host can show why.
func ExampleLoader_HistoryError() {
	dir, err := os.MkdirTemp("", "hothost-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "versions.json"), []byte("not a history"), 0o600); err != nil {
		log.Fatal(err)
	}
	l, err := loader.New(exampleOptions(dir))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(errors.Is(l.HistoryError(), loader.ErrHistoryInvalid), l.Current().Modules()["greet"])
	// Output: true 1.1.0
}

// A host counts its preflight children by wrapping the default.
func ExampleExecPreflight() {
	dir, err := os.MkdirTemp("", "hothost-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	var children atomic.Int64
	opts := exampleOptions(dir)
	opts.Preflight = func(ctx context.Context, path string) (*loader.PreflightReport, error) {
		children.Add(1)
		return loader.ExecPreflight(ctx, path)
	}
	l, err := loader.New(opts)
	if err != nil {
		log.Fatal(err)
	}
	if err := l.Poll(context.Background()); err != nil {
		log.Fatal(err)
	}
	fmt.Println("preflight children:", children.Load())
	// Output: preflight children: 0
}
