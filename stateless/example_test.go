package stateless_test

import (
	"fmt"
	"go/token"
	"path/filepath"

	"github.com/hothost/hothost/stateless"
)

// Load a plugin with its helper packages and check the whole tree; shared
// packages outside the plugin's folder are not plugin code.
func ExampleLoad() {
	plugins, err := stateless.Load(nil, "./testdata/tree/plugin")
	if err != nil {
		fmt.Println(err)
		return
	}
	p := plugins[0]
	fmt.Println("checked", len(p.Tree), "packages")
	findings, err := p.Vet()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range findings {
		rel, _ := filepath.Rel(p.Dir, f.Pos.Filename)
		fmt.Printf("%s:%d: %.40s...\n", rel, f.Pos.Line, f.Message)
	}
	// Output:
	// checked 3 packages
	// helper/deep/deep.go:9: log.Fatalf ends the host process (it cal...
	// helper/helper.go:9: go statement: a goroutine outlives the c...
	// main.go:18: package-level variable calls is state ke...
}

// Read the descriptor's Name and Version without running the plugin, as
// hhbuild does to check -name and -version; Version here is a constant from
// version.go.
func ExamplePlugin_Descriptor() {
	plugins, err := stateless.Load(nil, "./testdata/tree/plugin")
	if err != nil {
		fmt.Println(err)
		return
	}
	d, err := plugins[0].Descriptor()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(d.Name, d.Version, filepath.Base(d.VersionPos.Filename), d.VersionPos.Line)
	// Output: coin 1.2.3 main.go 13
}

// A finding prints as file:line:col: message, the form editors jump to.
func ExampleFinding_String() {
	f := stateless.Finding{
		Pos:     token.Position{Filename: "plugins/coin/v3/main.go", Line: 26, Column: 2},
		Message: "os.Exit ends the host process: return an error instead",
	}
	fmt.Println(f)
	// Output: plugins/coin/v3/main.go:26:2: os.Exit ends the host process: return an error instead
}
