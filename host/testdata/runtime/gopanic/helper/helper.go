// Package helper is plugin code of the gopanic case: it sits in the
// plugin's folder, so the vet checks it like the main package.
package helper

// Sum adds up values on a goroutine of its own, the way a worker pool
// would, and waits for the result. The goroutine reads one past the end and
// panics, so the result never comes: the caller waits until the panic ends
// the process.
func Sum(values []int64) int64 {
	res := make(chan int64)
	go func() {
		var s int64
		for i := 0; i <= len(values); i++ {
			s += values[i]
		}
		res <- s
	}()
	return <-res
}
