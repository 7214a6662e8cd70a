package loader

import (
	"bufio"
	"debug/elf"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// ReleaseCleanPages lets the kernel drop the resident pages of an opened
// plugin's read-only segments (dynamic symbols and relocations, code,
// rodata, pclntab). ld.so and the runtime read most of them once, while
// binding ~14,000 relocations and registering the module, and then never
// again: the plugin's code is almost all copies of packages the host has,
// and calls bind to the host's copies. Measured on coin: 2.0-2.15 MiB of
// RSS per loaded version before, 0.86 MiB after (BENCHMARKS.md).
//
// These are private file mappings that were never written, so
// MADV_DONTNEED only unmaps their pages: a later touch faults the page
// cache's copy back in. The writable segment (relocated data, RELRO
// included) is never touched: dropping it would lose the relocations.
func ReleaseCleanPages(path string) error {
	at, err := loadAddress(path)
	if err != nil {
		return err
	}
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	page := uint64(os.Getpagesize())
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_W != 0 {
			continue
		}
		lo := uint64(at) + p.Vaddr&^(page-1)
		hi := (uint64(at) + p.Vaddr + p.Filesz + page - 1) &^ (page - 1)
		// The range is memory ld.so mapped, passed as plain numbers: no Go
		// pointer is ever made from it.
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(lo), uintptr(hi-lo), unix.MADV_DONTNEED); e != 0 {
			return fmt.Errorf("madvise segment at %#x: %w", p.Vaddr, e)
		}
	}
	return nil
}

// loadAddress is where ld.so mapped the start of the file at path, from
// /proc/self/maps (matched by device and inode, not by name).
func loadAddress(path string) (uintptr, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	dev := fmt.Sprintf("%02x:%02x", unix.Major(st.Dev), unix.Minor(st.Dev))
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var start, end, offset uint64
		var perms, mdev string
		var inode uint64
		if n, _ := fmt.Sscanf(sc.Text(), "%x-%x %s %x %s %d", &start, &end, &perms, &offset, &mdev, &inode); n == 6 &&
			inode == st.Ino && strings.EqualFold(mdev, dev) && offset == 0 {
			return uintptr(start), nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s is not mapped", path)
}
