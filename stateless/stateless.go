// Package stateless holds the go/analysis pass that keeps hothost plugins
// stateless (DESIGN.md invariant 8).
//
// A plugin's code is replaced while the host runs and old versions stay
// loaded for ever, so anything a plugin keeps between calls is lost, or
// worse, silently kept by an old version after a swap. Player state belongs
// in the state layer, which survives swaps and restarts. In a plugin's main
// package the analyzer refuses:
//
//   - package-level variables, except the exported descriptor
//     (var Module = abi.Module{...}) and blank assertions (var _ T = x);
//   - go statements (a goroutine outlives the call that started it);
//   - init functions that do more than register, that is anything but
//     assignments to the Module descriptor;
//   - calls in the initializers of the descriptor and of blank variables,
//     since those run when the plugin is opened, like an init.
//
// Constants, types, functions and function literals are all fine.
// Packages not named main are not checked: plugins are main packages.
package stateless

import (
	"go/ast"
	"go/token"
	"go/types"

	"golang.org/x/tools/go/analysis"
)

// ABIPath is the import path of the package holding the descriptor type.
const ABIPath = "github.com/hothost/hothost/abi"

// Analyzer reports state a plugin would keep between calls.
var Analyzer = &analysis.Analyzer{
	Name: "stateless",
	Doc: "refuse state in hothost plugins: package-level variables (but the abi.Module " +
		"descriptor and blank assertions), go statements, and init functions that do more than register",
	URL: "https://github.com/hothost/hothost/blob/main/stateless",
	Run: run,
}

func run(pass *analysis.Pass) (any, error) {
	if pass.Pkg.Name() != "main" {
		return nil, nil
	}
	for _, f := range pass.Files {
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.GenDecl:
				if d.Tok == token.VAR {
					checkVars(pass, d)
				}
			case *ast.FuncDecl:
				if d.Recv == nil && d.Name.Name == "init" {
					checkInit(pass, d)
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if g, ok := n.(*ast.GoStmt); ok {
				pass.Reportf(g.Go, "go statement: a goroutine outlives the call that started it; plugins must not start goroutines")
			}
			return true
		})
	}
	return nil, nil
}

func checkVars(pass *analysis.Pass, d *ast.GenDecl) {
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
			case name.Name == "Module" && isDescriptor(pass.TypesInfo.Defs[name]):
				if c := firstCall(pass, value); c != nil {
					pass.Reportf(c.Pos(), "call in the Module descriptor's initializer: it runs when the plugin is opened; use literals and function values")
				}
			case name.Name == "Module":
				pass.Reportf(name.Pos(), "package-level variable Module must have type abi.Module (the descriptor the host looks up), not %s",
					typeString(pass, pass.TypesInfo.Defs[name]))
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

// isDescriptor reports whether obj is a variable of type abi.Module.
func isDescriptor(obj types.Object) bool {
	if obj == nil {
		return false
	}
	named, ok := obj.Type().(*types.Named)
	if !ok {
		return false
	}
	tn := named.Obj()
	return tn.Pkg() != nil && tn.Pkg().Path() == ABIPath && tn.Name() == "Module"
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
// sides are the Module descriptor or parts of it, with call-free right sides.
func checkInit(pass *analysis.Pass, fn *ast.FuncDecl) {
	if fn.Body == nil {
		return
	}
	for _, stmt := range fn.Body.List {
		as, ok := stmt.(*ast.AssignStmt)
		if !ok || as.Tok != token.ASSIGN {
			pass.Reportf(stmt.Pos(), "init does more than register: only assignments to the Module descriptor are allowed in a plugin's init")
			continue
		}
		for _, lhs := range as.Lhs {
			if !rootedAtDescriptor(pass, lhs) {
				pass.Reportf(lhs.Pos(), "init does more than register: it assigns to something other than the Module descriptor")
			}
		}
		for _, rhs := range as.Rhs {
			if c := firstCall(pass, rhs); c != nil {
				pass.Reportf(c.Pos(), "init does more than register: it calls a function; an init may only assign values to the Module descriptor")
			}
		}
	}
}

// rootedAtDescriptor reports whether e is Module, Module.F, Module.Handlers[k]...
func rootedAtDescriptor(pass *analysis.Pass, e ast.Expr) bool {
	for {
		switch x := e.(type) {
		case *ast.Ident:
			return isDescriptor(pass.TypesInfo.Uses[x]) && x.Name == "Module"
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
