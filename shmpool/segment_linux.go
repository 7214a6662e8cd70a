//go:build linux

package shmpool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/edsrzf/mmap-go"
	"golang.org/x/sys/unix"
)

// DefaultDir is where POSIX shm_open puts its objects on Linux.
const DefaultDir = "/dev/shm"

// segment is an open, locked and mapped segment file.
type segment struct {
	path string
	file *os.File
	mem  mmap.MMap
}

func segmentPath(dir, name string) (string, error) {
	if name == "" || name == "." || name == ".." || filepath.Base(name) != name {
		return "", fmt.Errorf("shmpool: segment name %q must be a plain file name", name)
	}
	if dir == "" {
		dir = DefaultDir
	}
	return filepath.Join(dir, name), nil
}

// openFile opens (or, with create, exclusively creates) the segment file and
// takes the exclusive owner lock. created reports whether this call made it.
func openFile(path string, create bool) (f *os.File, created bool, err error) {
	flags := unix.O_RDWR | unix.O_CLOEXEC | unix.O_NOFOLLOW
	fd, err := unix.Open(path, flags, 0)
	if errors.Is(err, unix.ENOENT) && create {
		fd, err = unix.Open(path, flags|unix.O_CREAT|unix.O_EXCL, 0o600)
		created = err == nil
		if errors.Is(err, unix.EEXIST) { // lost a creation race: attach instead
			fd, err = unix.Open(path, flags, 0)
		}
	}
	if err != nil {
		return nil, false, fmt.Errorf("shmpool: open %s: %w", path, err)
	}
	f = os.NewFile(uintptr(fd), path)
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, false, fmt.Errorf("%w: %s is held by %s", ErrLocked, path, ownerOf(f))
		}
		return nil, false, fmt.Errorf("shmpool: lock %s: %w", path, err)
	}
	return f, created, nil
}

// ownerOf reads the owner pid word without trusting the rest of the header.
func ownerOf(f *os.File) string {
	var b [8]byte
	if n, _ := f.ReadAt(b[:], offOwnerPID); n == 8 {
		if pid := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24; pid != 0 {
			return fmt.Sprintf("pid %d", pid)
		}
	}
	return "a process whose pid is not recorded yet"
}

// allocate reserves the file's blocks so that a full tmpfs is an error now
// rather than a SIGBUS at some later write.
func allocate(f *os.File, size uint64) error {
	if err := unix.Fallocate(int(f.Fd()), 0, 0, int64(size)); err != nil {
		if errors.Is(err, unix.ENOSPC) {
			return fmt.Errorf("%w: %s needs %d bytes: %v", ErrNoSpace, f.Name(), size, err)
		}
		return fmt.Errorf("shmpool: fallocate %s (%d bytes): %w", f.Name(), size, err)
	}
	return nil
}

func mapFile(f *os.File, size uint64) (mmap.MMap, error) {
	m, err := mmap.MapRegion(f, int(size), mmap.RDWR, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("shmpool: mmap %s (%d bytes): %w", f.Name(), size, err)
	}
	return m, nil
}

func fileSize(f *os.File) (uint64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("shmpool: stat %s: %w", f.Name(), err)
	}
	return uint64(st.Size()), nil
}

func (s *segment) close() error {
	var errs []error
	if s.mem != nil {
		if err := s.mem.Unmap(); err != nil {
			errs = append(errs, fmt.Errorf("shmpool: unmap %s: %w", s.path, err))
		}
		s.mem = nil
	}
	if s.file != nil {
		errs = append(errs, s.file.Close()) // closing the fd drops the flock
		s.file = nil
	}
	return errors.Join(errs...)
}

// Remove deletes the segment file name in dir ("" means DefaultDir). It
// refuses while another process owns the segment. Removing a missing
// segment is not an error.
func Remove(dir, name string) error {
	path, err := segmentPath(dir, name)
	if err != nil {
		return err
	}
	f, _, err := openFile(path, false)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("shmpool: remove %s: %w", path, err)
	}
	return nil
}
