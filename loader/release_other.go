//go:build !linux

package loader

// ReleaseCleanPages is a Linux measure (MADV_DONTNEED of read-only ELF
// segments); elsewhere the pages stay.
func ReleaseCleanPages(string) error { return nil }
