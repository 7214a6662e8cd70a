package stateless

import (
	"cmp"
	"errors"
	"fmt"
	"go/token"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"golang.org/x/tools/go/analysis"
	"golang.org/x/tools/go/analysis/checker"
	"golang.org/x/tools/go/packages"
)

// ErrNoPlugin means the patterns named no main package: nothing to check,
// and nothing hhbuild could build.
var ErrNoPlugin = errors.New("no plugin (main package)")

// ErrCompile means plugin code does not compile, so it cannot be checked.
var ErrCompile = errors.New("plugin does not compile")

// Plugin is one plugin's source: its main package and the packages of its
// own source tree that the main package imports, directly or not. Only
// these are plugin code; abi, the game's state package and everything else
// outside the main package's directory are shared with the host or are
// third-party libraries, and are not checked.
type Plugin struct {
	Dir     string   // the main package's directory
	PkgPath string   // the main package's import path
	Tree    []string // import paths of the checked packages: PkgPath first, then its helpers, sorted

	pkgs []*packages.Package // Tree's packages, with syntax and types
}

// Finding is one refusal, at a position in the plugin's source.
type Finding struct {
	Pos     token.Position
	Message string
}

// String is "file:line:col: message", the form editors and go vet use.
func (f Finding) String() string { return f.Pos.String() + ": " + f.Message }

// Load finds the plugins among the packages that patterns name (go list
// patterns such as ./plugins/coin/v1 or ./plugins/...) and loads each one's
// tree for checking. env is the go command's environment (nil: this
// process's); build flags in it (GOFLAGS, CGO_ENABLED) select the files.
// Non-main packages among the patterns' matches are not plugins and are
// skipped; if none of the matches is a main package, Load returns
// ErrNoPlugin.
func Load(env []string, patterns ...string) ([]*Plugin, error) {
	// First the import graph alone (cheap: go list), to find each plugin's
	// tree; then syntax and types for the trees only, the rest of the
	// world coming from export data.
	graph, err := packages.Load(&packages.Config{
		Mode: packages.NeedName | packages.NeedFiles | packages.NeedImports | packages.NeedDeps,
		Env:  env,
	}, patterns...)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", strings.Join(patterns, " "), err)
	}
	if err := loadErrors(graph); err != nil {
		return nil, fmt.Errorf("list %s:\n\t%w", strings.Join(patterns, " "), err)
	}
	var plugins []*Plugin
	var paths []string
	for _, root := range graph {
		if root.Name != "main" {
			continue
		}
		p := &Plugin{Dir: root.Dir, PkgPath: root.PkgPath, Tree: treeOf(root)}
		plugins = append(plugins, p)
		paths = append(paths, p.Tree...)
	}
	if len(plugins) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoPlugin, strings.Join(patterns, " "))
	}
	typed, err := packages.Load(&packages.Config{Mode: packages.LoadSyntax, Env: env}, paths...)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", strings.Join(patterns, " "), err)
	}
	if err := loadErrors(typed); err != nil {
		return nil, fmt.Errorf("%w:\n\t%w", ErrCompile, err)
	}
	byPath := map[string]*packages.Package{}
	for _, pkg := range typed {
		byPath[pkg.PkgPath] = pkg
	}
	for _, p := range plugins {
		for _, path := range p.Tree {
			pkg, ok := byPath[path]
			if !ok {
				return nil, fmt.Errorf("load %s: package %s listed but not loaded", p.PkgPath, path)
			}
			p.pkgs = append(p.pkgs, pkg)
		}
	}
	return plugins, nil
}

// treeOf is the import paths of main and of every package it imports,
// directly or not, whose directory lies inside main's: main first.
func treeOf(main *packages.Package) []string {
	var helpers []string
	seen := map[*packages.Package]bool{}
	var visit func(p *packages.Package)
	visit = func(p *packages.Package) {
		if seen[p] {
			return
		}
		seen[p] = true
		if p != main && p.PkgPath != ABIPath && inside(main.Dir, p.Dir) {
			helpers = append(helpers, p.PkgPath)
		}
		for _, imp := range p.Imports {
			visit(imp)
		}
	}
	visit(main)
	sort.Strings(helpers)
	return append([]string{main.PkgPath}, helpers...)
}

// inside reports whether dir is root or below it.
func inside(root, dir string) bool {
	if root == "" || dir == "" {
		return false
	}
	rel, err := filepath.Rel(root, dir)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// loadErrors joins the errors go/packages recorded on pkgs and their
// dependencies, one a line, or returns nil.
func loadErrors(pkgs []*packages.Package) error {
	var msgs []string
	packages.Visit(pkgs, nil, func(p *packages.Package) {
		for _, e := range p.Errors {
			msgs = append(msgs, e.Error())
		}
	})
	if len(msgs) == 0 {
		return nil
	}
	return errors.New(strings.Join(msgs, "\n\t"))
}

// Vet runs the analyzer over the plugin's tree and returns its findings,
// sorted by position. Any finding means the plugin must not be built.
func (p *Plugin) Vet() ([]Finding, error) {
	g, err := checker.Analyze([]*analysis.Analyzer{Analyzer}, p.pkgs, nil)
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", p.PkgPath, err)
	}
	var out []Finding
	for _, act := range g.Roots {
		if act.Err != nil {
			return nil, fmt.Errorf("check %s: %w", act.Package.PkgPath, act.Err)
		}
		for _, d := range act.Diagnostics {
			out = append(out, Finding{Pos: act.Package.Fset.Position(d.Pos), Message: d.Message})
		}
	}
	slices.SortFunc(out, func(a, b Finding) int {
		return cmp.Or(strings.Compare(a.Pos.Filename, b.Pos.Filename),
			cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Column, b.Pos.Column))
	})
	return out, nil
}
