// Package stateless holds the go/analysis pass that keeps hothost plugins
// stateless and unable to end the host (docs/ARCHITECTURE.md invariants 8 and 11), and
// the driver that runs it over a plugin's whole source tree.
//
// A plugin's code is replaced while the host runs and old versions stay
// loaded for ever, so anything a plugin keeps between calls is lost, or
// worse, silently kept by an old version after a swap. Player state belongs
// in the state layer, which survives swaps and restarts. And a plugin runs
// inside the host's process: a call that ends the process or the goroutine
// takes every player down with it. In plugin code the analyzer refuses:
//
//   - package-level variables, except the main package's exported
//     descriptor (var Module = abi.Module{...}, or var Fix = abi.Fix{...}
//     for a repair plugin) and blank assertions (var _ T = x);
//   - go statements (a goroutine outlives the call that started it, and a
//     panic on it ends the host: the host recovers only the call's own);
//   - calls that end the process or the goroutine: os.Exit, syscall.Exit,
//     unix.Exit, log.Fatal, log.Fatalf, log.Fatalln, the same methods of
//     *log.Logger, and runtime.Goexit (a call, a deferred call or a function
//     value alike);
//   - init functions that do more than register: in the main package
//     anything but assignments to the descriptor, in any other
//     package of the plugin anything at all;
//   - calls in the initializers of the descriptor and of blank variables,
//     since those run when the plugin is opened, like an init.
//
// Constants, types, functions and function literals are all fine.
//
// The analyzer treats every package it is run on as plugin code. [Load]
// decides which packages those are: a plugin's main package and the
// packages of its own source tree (below the main package's directory) that
// it imports. Packages shared with the host, such as abi and the game's
// state package, live outside that tree and are never checked. The checks
// see only the plugin's own source: a third-party logger that calls
// os.Exit inside its own package is not caught.
package stateless

import (
	"go/ast"
	"go/token"
	"go/types"

	"golang.org/x/tools/go/analysis"
)

// ABIPath is the import path of the package holding the descriptor type.
const ABIPath = "github.com/hothost/hothost/abi"

// Analyzer reports state a plugin would keep between calls and calls that
// would end the host's process or goroutine.
var Analyzer = &analysis.Analyzer{
	Name: "stateless",
	Doc: "refuse state and process-ending calls in hothost plugins: package-level variables " +
		"(but the abi.Module or abi.Fix descriptor and blank assertions), go statements, os.Exit, log.Fatal*, " +
		"runtime.Goexit, syscall.Exit, and init functions that do more than register",
	URL: "https://github.com/hothost/hothost/blob/main/stateless",
	Run: run,
}

const (
	endsProcess = "ends the host process"
	logsAndEnds = endsProcess + " (it calls os.Exit after logging)"
)

// ending says, for each function that ends the process or the calling
// goroutine (by types.Func.FullName), what it does to the host.
var ending = map[string]string{
	"os.Exit":                    endsProcess,
	"syscall.Exit":               endsProcess,
	"golang.org/x/sys/unix.Exit": endsProcess,
	"log.Fatal":                  logsAndEnds,
	"log.Fatalf":                 logsAndEnds,
	"log.Fatalln":                logsAndEnds,
	"(*log.Logger).Fatal":        logsAndEnds,
	"(*log.Logger).Fatalf":       logsAndEnds,
	"(*log.Logger).Fatalln":      logsAndEnds,
	"runtime.Goexit":             "ends the host's goroutine running the call, which then never replies nor commits",
}

func run(pass *analysis.Pass) (any, error) {
	isMain := pass.Pkg.Name() == "main"
	for _, f := range pass.Files {
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.GenDecl:
				if d.Tok == token.VAR {
					checkVars(pass, d, isMain)
				}
			case *ast.FuncDecl:
				if d.Recv == nil && d.Name.Name == "init" {
					checkInit(pass, d, isMain)
				}
			}
		}
		checkBodies(pass, f)
	}
	return nil, nil
}

// checkBodies reports go statements and every use of a function that ends
// the process or the goroutine, called or taken as a value.
func checkBodies(pass *analysis.Pass, f *ast.File) {
	seen := map[*ast.Ident]bool{} // selectors are reported at their start
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.GoStmt:
			pass.Reportf(n.Go, "go statement: a goroutine outlives the call that started it, and a panic on it ends the host process (the host recovers panics only on the call's goroutine); plugins must not start goroutines")
		case *ast.SelectorExpr:
			seen[n.Sel] = true
			reportEnding(pass, n.Sel, n.Pos())
		case *ast.Ident:
			if !seen[n] {
				reportEnding(pass, n, n.Pos())
			}
		}
		return true
	})
}

func reportEnding(pass *analysis.Pass, id *ast.Ident, pos token.Pos) {
	fn, ok := pass.TypesInfo.Uses[id].(*types.Func)
	if !ok {
		return
	}
	if why, ok := ending[fn.FullName()]; ok {
		pass.Reportf(pos, "%s %s: return an error instead", shortName(fn), why)
	}
}

// shortName is fn as a plugin's author writes it: unix.Exit, log.Fatalf,
// (*log.Logger).Fatal.
func shortName(fn *types.Func) string {
	if recv := fn.Signature().Recv(); recv != nil {
		return "(" + types.TypeString(recv.Type(), (*types.Package).Name) + ")." + fn.Name()
	}
	return fn.Pkg().Name() + "." + fn.Name()
}

// checkVars allows the descriptor in the main package only: the host looks
// it up there, and a Module (or Fix) anywhere else is just a variable.
func checkVars(pass *analysis.Pass, d *ast.GenDecl, isMain bool) {
	for _, spec := range d.Specs {
		vs := spec.(*ast.ValueSpec)
		for i, name := range vs.Names {
			var value ast.Expr
			if len(vs.Values) == len(vs.Names) {
				value = vs.Values[i]
			} else if len(vs.Values) == 1 {
				value = vs.Values[0] // var a, b = f()
			}
			switch {
			case name.Name == "_":
				if c := firstCall(pass, value); c != nil {
					pass.Reportf(c.Pos(), "call in the initializer of a blank variable: it runs when the plugin is opened; plugins may only assert (var _ T = x)")
				}
			case isMain && isDescriptor(name.Name, pass.TypesInfo.Defs[name]):
				if c := firstCall(pass, value); c != nil {
					pass.Reportf(c.Pos(), "call in the %s descriptor's initializer: it runs when the plugin is opened; use literals and function values", name.Name)
				}
			case isMain && descriptorNames[name.Name]:
				pass.Reportf(name.Pos(), "package-level variable %s must have type abi.%s (the descriptor the host looks up), not %s",
					name.Name, name.Name, typeString(pass, pass.TypesInfo.Defs[name]))
			default:
				pass.Reportf(name.Pos(), "package-level variable %s is state kept between calls; plugins must be stateless (use a const, a local, or the player's state)", name.Name)
			}
		}
	}
}

func typeString(pass *analysis.Pass, obj types.Object) string {
	if obj == nil {
		return "unknown"
	}
	return types.TypeString(obj.Type(), types.RelativeTo(pass.Pkg))
}

// descriptorNames are the descriptors a plugin may export: each variable
// is named like its abi type (var Module abi.Module, var Fix abi.Fix).
var descriptorNames = map[string]bool{"Module": true, "Fix": true}

// isDescriptor reports whether obj, named name, is a descriptor: Module
// of type abi.Module, or Fix of type abi.Fix.
func isDescriptor(name string, obj types.Object) bool {
	if obj == nil || !descriptorNames[name] {
		return false
	}
	named, ok := obj.Type().(*types.Named)
	if !ok {
		return false
	}
	tn := named.Obj()
	return tn.Pkg() != nil && tn.Pkg().Path() == ABIPath && tn.Name() == name
}

// firstCall returns the first call in e that would run code: conversions are
// not calls, builtins are harmless, and function literals run only when
// called, so their bodies are skipped.
func firstCall(pass *analysis.Pass, e ast.Expr) *ast.CallExpr {
	if e == nil {
		return nil
	}
	var found *ast.CallExpr
	ast.Inspect(e, func(n ast.Node) bool {
		if found != nil {
			return false
		}
		switch n := n.(type) {
		case *ast.FuncLit:
			return false
		case *ast.CallExpr:
			tv, ok := pass.TypesInfo.Types[n.Fun]
			if ok && (tv.IsType() || tv.IsBuiltin()) {
				return true
			}
			found = n
			return false
		}
		return true
	})
	return found
}

// checkInit allows an init that only registers: assignments (=) whose left
// sides are the descriptor or parts of it, with call-free right sides.
// Only the main package has a descriptor, so other packages of the plugin
// may not have an init that does anything.
func checkInit(pass *analysis.Pass, fn *ast.FuncDecl, isMain bool) {
	if fn.Body == nil {
		return
	}
	for _, stmt := range fn.Body.List {
		if !isMain {
			pass.Reportf(stmt.Pos(), "init in package %s runs when the plugin is opened: only the main package's init may register, by assigning to the descriptor", pass.Pkg.Name())
			continue
		}
		as, ok := stmt.(*ast.AssignStmt)
		if !ok || as.Tok != token.ASSIGN {
			pass.Reportf(stmt.Pos(), "init does more than register: only assignments to the descriptor are allowed in a plugin's init")
			continue
		}
		for _, lhs := range as.Lhs {
			if !rootedAtDescriptor(pass, lhs) {
				pass.Reportf(lhs.Pos(), "init does more than register: it assigns to something other than the descriptor (Module or Fix)")
			}
		}
		for _, rhs := range as.Rhs {
			if c := firstCall(pass, rhs); c != nil {
				pass.Reportf(c.Pos(), "init does more than register: it calls a function; an init may only assign values to the descriptor")
			}
		}
	}
}

// rootedAtDescriptor reports whether e is Module, Module.F, Module.Handlers[k],
// Fix.F...
func rootedAtDescriptor(pass *analysis.Pass, e ast.Expr) bool {
	for {
		switch x := e.(type) {
		case *ast.Ident:
			return isDescriptor(x.Name, pass.TypesInfo.Uses[x])
		case *ast.SelectorExpr:
			e = x.X
		case *ast.IndexExpr:
			if firstCall(pass, x.Index) != nil {
				return false
			}
			e = x.X
		case *ast.ParenExpr:
			e = x.X
		default:
			return false
		}
	}
}
