//go:build !linux

package loader

// releaseCleanPages is a Linux measure (MADV_DONTNEED of read-only ELF
// segments); elsewhere the pages stay.
func releaseCleanPages(string) error { return nil }
