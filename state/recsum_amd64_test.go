package state

import "testing"

// portableCommit makes the commits of the rest of t take Store.commitWith
// with crcDelta, as on a machine without AVX-512.
func portableCommit(t *testing.T) {
	old := hasCommit512
	hasCommit512 = false
	t.Cleanup(func() { hasCommit512 = old })
}
