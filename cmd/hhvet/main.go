// Command hhvet runs hothost's statelessness check on plugin packages:
//
//	hhvet ./plugins/coin
//
// It refuses package-level mutable variables, go statements and init
// functions that do more than register, naming file and line (see package
// stateless). hhbuild runs the same check before every plugin build.
package main

import (
	"github.com/hothost/hothost/stateless"
	"golang.org/x/tools/go/analysis/singlechecker"
)

func main() { singlechecker.Main(stateless.Analyzer) }
