// Package deep is plugin code reached only through helper.
package deep

import "log"

// Twice ends the host on a negative n.
func Twice(n int64) int64 {
	if n < 0 {
		log.Fatalf("negative: %d", n)
	}
	return 2 * n
}
