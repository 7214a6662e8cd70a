// Package helper stands for a package of a plugin's own source tree: the
// same rules as main, but no descriptor and no init at all.
package helper

import (
	"os"

	"github.com/hothost/hothost/abi"
)

var Counter int // want `package-level variable Counter is state kept between calls`

var Module = abi.Module{} // want `package-level variable Module is state kept between calls`

var _ abi.Handler = nil

func init() {
	Counter = 1 // want `init in package helper runs when the plugin is opened: only the main package's init may register`
}

func Start() { go func() {}() } // want `go statement: a goroutine outlives the call`

func Stop() { os.Exit(1) } // want `os.Exit ends the host process: return an error instead`
