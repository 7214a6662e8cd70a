package stateless_test

import (
	"testing"

	"github.com/hothost/hothost/stateless"
	"golang.org/x/tools/go/analysis/analysistest"
)

// TestAnalyzer checks that every kind of state is reported at its line
// (bad, wrongtype), that a plugin using everything allowed is clean (good),
// and that non-main packages are not checked (lib).
func TestAnalyzer(t *testing.T) {
	analysistest.Run(t, analysistest.TestData(), stateless.Analyzer, "good", "bad", "wrongtype", "lib")
}
