package shmpool_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// shmDir gives each test its own directory on the real /dev/shm tmpfs, so
// test packages running in parallel never share a segment name.
func shmDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join("/dev/shm", fmt.Sprintf("hothost-test-%d-%s", os.Getpid(), filepath.Base(t.Name())))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
