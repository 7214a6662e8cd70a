package stateless

import (
	"errors"
	"fmt"
	"go/ast"
	"go/constant"
	"go/token"
	"go/types"

	"golang.org/x/tools/go/packages"
)

// ErrDescriptor means the descriptor's Name or Version cannot be read from
// the plugin's source without running it, so a build cannot check them.
var ErrDescriptor = errors.New("descriptor cannot be read from source")

// Descriptor is what a plugin's Module (or a repair plugin's Fix) says
// about itself, read from source.
type Descriptor struct {
	Kind                string // "Module" or "Fix": the descriptor variable
	Name, Version       string
	NamePos, VersionPos token.Position // where each value is set
}

// descriptorFields are the fields Descriptor reads.
var descriptorFields = []string{"Name", "Version"}

// setting is where a descriptor field gets its value: expr, or the zero
// value "" when expr is nil; why says why it cannot be known, if so.
type setting struct {
	expr ast.Expr
	pos  token.Pos
	why  string
}

// Descriptor reads the Name and Version of the main package's Module (or,
// in a repair plugin, its Fix) from the last place that sets each: an assignment in an init (inits run after
// the variable's initializer, files in name order as the go command passes
// them), else the initializer's composite literal. Each must be a constant
// expression: a literal, or a constant such as version in version.go.
// Otherwise Descriptor returns ErrDescriptor saying where and why. It reads
// code as Vet accepts it (inits only assign), so run Vet first. A package
// that declares both a Module and a Fix is refused: the host would load it
// as a module and never as a repair.
func (p *Plugin) Descriptor() (Descriptor, error) {
	main := p.pkgs[0]
	var obj types.Object
	for _, kind := range []string{"Module", "Fix"} {
		o := main.Types.Scope().Lookup(kind)
		if o == nil || !isDescriptor(kind, o) {
			continue
		}
		if obj != nil {
			return Descriptor{}, fmt.Errorf("%w: package %s declares both a Module and a Fix: a plugin is a module or a repair, build them apart", ErrDescriptor, p.PkgPath)
		}
		obj = o
	}
	if obj == nil {
		return Descriptor{}, fmt.Errorf("%w: package %s declares no var Module of type abi.Module (nor var Fix of type abi.Fix)", ErrDescriptor, p.PkgPath)
	}
	kind := obj.Name()
	set := map[string]setting{}
	for _, name := range descriptorFields {
		set[name] = setting{pos: obj.Pos()} // var Module abi.Module: both ""
	}
	for _, f := range main.Syntax {
		for _, decl := range f.Decls {
			if d, ok := decl.(*ast.GenDecl); ok && d.Tok == token.VAR {
				for _, spec := range d.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, name := range vs.Names {
						if main.TypesInfo.Defs[name] == obj && len(vs.Values) == len(vs.Names) {
							setAll(main, kind, set, vs.Values[i])
						}
					}
				}
			}
		}
	}
	for _, f := range main.Syntax {
		for _, decl := range f.Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok && fn.Recv == nil && fn.Name.Name == "init" && fn.Body != nil {
				for _, stmt := range fn.Body.List {
					if as, ok := stmt.(*ast.AssignStmt); ok {
						setFromInit(main, obj, set, as)
					}
				}
			}
		}
	}
	d := Descriptor{Kind: kind}
	var err error
	d.Name, d.NamePos, err = value(main, set["Name"], kind+".Name")
	if err != nil {
		return Descriptor{}, err
	}
	d.Version, d.VersionPos, err = value(main, set["Version"], kind+".Version")
	if err != nil {
		return Descriptor{}, err
	}
	return d, nil
}

// setAll records the fields of a whole-descriptor value: a composite
// literal sets the fields it names (by key or by position) and zeroes the
// others; anything else cannot be read.
func setAll(pkg *packages.Package, kind string, set map[string]setting, e ast.Expr) {
	lit, ok := ast.Unparen(e).(*ast.CompositeLit)
	if !ok {
		for _, name := range descriptorFields {
			set[name] = setting{pos: e.Pos(), why: kind + " is set to " + types.ExprString(e) + ", not a composite literal"}
		}
		return
	}
	for _, name := range descriptorFields {
		set[name] = setting{pos: lit.Pos()}
	}
	st, _ := pkg.TypesInfo.TypeOf(lit).Underlying().(*types.Struct)
	for i, elt := range lit.Elts {
		if kv, ok := elt.(*ast.KeyValueExpr); ok {
			if key, ok := kv.Key.(*ast.Ident); ok {
				if _, wanted := set[key.Name]; wanted {
					set[key.Name] = setting{expr: kv.Value, pos: kv.Value.Pos()}
				}
			}
		} else if st != nil && i < st.NumFields() {
			if name := st.Field(i).Name(); name == "Name" || name == "Version" {
				set[name] = setting{expr: elt, pos: elt.Pos()}
			}
		}
	}
}

// setFromInit records what an assignment in init does to the descriptor:
// Module = abi.Module{...} or Module.Name = ... / Module.Version = ... (or
// the same for Fix)
func setFromInit(pkg *packages.Package, obj types.Object, set map[string]setting, as *ast.AssignStmt) {
	for i, lhs := range as.Lhs {
		var rhs ast.Expr
		if len(as.Rhs) == len(as.Lhs) {
			rhs = as.Rhs[i]
		}
		switch l := ast.Unparen(lhs).(type) {
		case *ast.Ident:
			if pkg.TypesInfo.Uses[l] != obj {
				continue
			}
			if rhs == nil || as.Tok != token.ASSIGN {
				for _, name := range descriptorFields {
					set[name] = setting{pos: as.Pos(), why: obj.Name() + " is assigned by " + types.ExprString(lhs) + " " + as.Tok.String() + " ..."}
				}
				continue
			}
			setAll(pkg, obj.Name(), set, rhs)
		case *ast.SelectorExpr:
			x, ok := ast.Unparen(l.X).(*ast.Ident)
			if _, wanted := set[l.Sel.Name]; !ok || !wanted || pkg.TypesInfo.Uses[x] != obj {
				continue
			}
			if rhs == nil || as.Tok != token.ASSIGN {
				set[l.Sel.Name] = setting{pos: as.Pos(), why: "it is assigned by " + types.ExprString(l) + " " + as.Tok.String() + " ..."}
				continue
			}
			set[l.Sel.Name] = setting{expr: rhs, pos: rhs.Pos()}
		}
	}
}

// value evaluates one field's setting to a string constant.
func value(pkg *packages.Package, s setting, field string) (string, token.Position, error) {
	pos := pkg.Fset.Position(s.pos)
	if s.why != "" {
		return "", pos, fmt.Errorf("%w: %s at %s: %s", ErrDescriptor, field, pos, s.why)
	}
	if s.expr == nil {
		return "", pos, nil
	}
	tv := pkg.TypesInfo.Types[s.expr]
	if tv.Value == nil || tv.Value.Kind() != constant.String {
		return "", pos, fmt.Errorf("%w: %s at %s is %s, not a constant string: use a literal or a constant (const version = \"1.2.0\")",
			ErrDescriptor, field, pos, types.ExprString(s.expr))
	}
	return constant.StringVal(tv.Value), pos, nil
}
