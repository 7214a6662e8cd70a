package stateless_test

import (
	"testing"

	"github.com/hothost/hothost/stateless"
	"golang.org/x/tools/go/analysis/analysistest"
)

// TestAnalyzer checks that every kind of state and every call that ends
// the process or the goroutine is reported at its line (bad, ending,
// wrongtype), that a plugin using everything allowed is clean (good), and
// that a helper package of a plugin's tree gets the same rules without the
// descriptor's exceptions (helper), and that a repair plugin's Fix is a
// descriptor like Module (fixgood) only with its own type (fixwrong).
func TestAnalyzer(t *testing.T) {
	analysistest.Run(t, analysistest.TestData(), stateless.Analyzer, "good", "bad", "wrongtype", "helper", "ending", "fixgood", "fixwrong")
}
