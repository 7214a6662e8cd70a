package loader_test

import (
	"errors"
	"testing"

	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/loader"
)

// TestStatic: a module linked into the binary starts active and is called
// through the table like a plugin; a bad static descriptor fails New.
func TestStatic(t *testing.T) {
	m := &abi.Module{Name: "statictest", Version: "1.0.0", ABI: ">= 1.0",
		Handlers: map[string]abi.Handler{"static_ping": func(c *abi.Call) error { c.Reply("pong"); return nil }}}
	l := newLoader(t, loader.Options{Static: []*abi.Module{m}})
	e, ok := l.Current().Lookup("static_ping")
	if !ok || e.Version() != "1.0.0" {
		t.Fatalf("static module not in the table: %v %q", ok, e.Version())
	}
	c := &abi.Call{}
	if err := e.Call(c); err != nil || c.ReplyText() != "pong" {
		t.Fatalf("call: %v %q", err, c.ReplyText())
	}
	bad := &abi.Module{Name: "statictest", Version: "1.0.0", ABI: ">= 9.0", Handlers: m.Handlers}
	if _, err := loader.New(loader.Options{Dir: t.TempDir(), Static: []*abi.Module{bad}}); !errors.Is(err, loader.ErrABI) {
		t.Fatalf("bad static module: %v, want ErrABI", err)
	}
}
