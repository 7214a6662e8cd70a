package main

import "golang.org/x/sys/unix"

// madvise gives advice on [addr, addr+n). The range is memory ld.so mapped,
// not Go memory, so it is passed as plain numbers: no Go pointer is ever
// made from it.
func madvise(addr, n uintptr, advice int) error {
	if _, _, e := unix.Syscall(unix.SYS_MADVISE, addr, n, uintptr(advice)); e != 0 {
		return e
	}
	return nil
}
