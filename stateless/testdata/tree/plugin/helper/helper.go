// Package helper is plugin code: it lives in the plugin's folder.
package helper

import "github.com/hothost/hothost/stateless/testdata/tree/plugin/helper/deep"

// Double starts a goroutine, which a plugin must not.
func Double(n int64) int64 {
	done := make(chan int64)
	go func() { done <- deep.Twice(n) }()
	return <-done
}
