// Command hhvet checks hothost plugins the way hhbuild does before a build,
// without building:
//
//	hhvet ./plugins/coin/v1
//	hhvet -v ./plugins/...
//
// For every main package the patterns name, it checks the plugin's whole
// source tree (the main package and the packages below its directory that
// it imports; see package stateless) and prints each refusal as
// file:line:col: message. It refuses package-level mutable variables, go
// statements, calls that end the process or the goroutine (os.Exit,
// log.Fatal*, runtime.Goexit, syscall.Exit) and init functions that do more
// than register, and says so when the descriptor's Name or Version is not a
// constant hhbuild could check. Non-main packages are not plugins and are
// skipped. Exit status: 0 clean, 1 refused, 2 could not check.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hothost/hothost/stateless"
)

func main() {
	verbose := flag.Bool("v", false, "list the packages checked for each plugin")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: hhvet [-v] packages...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	refused, err := check(os.Stdout, *verbose, flag.Args()...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hhvet:", err)
		os.Exit(2)
	}
	if refused {
		os.Exit(1)
	}
}

// check writes one line per refusal to w and reports whether there was any.
func check(w io.Writer, verbose bool, patterns ...string) (bool, error) {
	plugins, err := stateless.Load(nil, patterns...)
	if err != nil {
		return false, err
	}
	refused := false
	for _, p := range plugins {
		if verbose {
			fmt.Fprintf(w, "%s: checking %s\n", p.Dir, strings.Join(p.Tree, " "))
		}
		findings, err := p.Vet()
		if err != nil {
			return refused, err
		}
		for _, f := range findings {
			fmt.Fprintln(w, f)
		}
		refused = refused || len(findings) > 0
		if _, err := p.Descriptor(); err != nil {
			fmt.Fprintf(w, "%s: %v\n", p.Dir, err)
			refused = true
		}
	}
	return refused, nil
}
