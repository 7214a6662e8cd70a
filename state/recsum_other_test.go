//go:build !amd64

package state

import "testing"

// portableCommit: commits take Store.commitWith everywhere but amd64.
func portableCommit(t *testing.T) {}
