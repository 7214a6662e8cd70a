package main

import "golang.org/x/sys/unix"

// madviseDontNeed drops the pages of [addr, addr+n) from this process's
// page tables. The range is memory ld.so mapped, not Go memory, so it is
// passed as plain numbers: no Go pointer is ever made from it.
func madviseDontNeed(addr, n uintptr) error {
	if _, _, e := unix.Syscall(unix.SYS_MADVISE, addr, n, unix.MADV_DONTNEED); e != 0 {
		return e
	}
	return nil
}
