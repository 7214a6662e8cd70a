package supervisor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ErrBadBinary is wrapped by the errors about a worker binary that does not
// exist or is not an executable file.
var ErrBadBinary = errors.New("supervisor: not an executable worker binary")

// checkBinary refuses a path that cannot be a worker binary, before any
// worker is drained for it.
func checkBinary(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadBinary, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is a %v, not a regular file", ErrBadBinary, path, st.Mode().Type())
	}
	if st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%w: %s is not executable (mode %v)", ErrBadBinary, path, st.Mode().Perm())
	}
	return nil
}

// An upgrade that replaces the binary in place (make build, then SIGHUP)
// and fails would otherwise "fall back" to the same broken file. So the
// supervisor keeps open the file of the last worker that became ready, and
// when the path it came from now names another file, restores a copy of it
// to start instead (see Status.Running).

// replaced reports whether path no longer names the file image was opened
// from.
func replaced(image *os.File, path string) bool {
	a, err := image.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err != nil || !os.SameFile(a, b)
}

// restoreImage writes a copy of image into dir, executable by its owner
// only, and returns the copy's path.
func restoreImage(image *os.File, dir, path string) (string, error) {
	st, err := image.Stat()
	if err != nil {
		return "", fmt.Errorf("supervisor: keep the previous binary: %w", err)
	}
	f, err := os.CreateTemp(dir, ".previous-"+filepath.Base(path)+"-*")
	if err != nil {
		return "", fmt.Errorf("supervisor: keep the previous binary: %w", err)
	}
	_, err = io.Copy(f, io.NewSectionReader(image, 0, st.Size()))
	if err == nil {
		err = f.Chmod(0o700)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("supervisor: keep the previous binary: %w", err)
	}
	return f.Name(), nil
}
