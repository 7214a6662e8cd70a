package ticket

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// maxKeyFile bounds what LoadKey reads: a key file is a few dozen bytes, so
// anything much larger is the wrong file.
const maxKeyFile = 4096

// LoadKey reads the key file at path: its bytes, as they are, are the HMAC
// key (a service minting tickets uses the same bytes). The file must be a
// regular file that neither group nor others can access, holding at least
// KeySize bytes; otherwise the error wraps ErrKey and names the fix.
func LoadKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ticket: key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("ticket: key file: %w", err)
	}
	switch {
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("ticket: %w: %s is not a regular file (%v)", ErrKey, path, st.Mode().Type())
	case st.Mode().Perm()&0o077 != 0:
		// Anyone who can read the key can log in as any player.
		return nil, fmt.Errorf("ticket: %w: %s has mode %#o, open to group or others (chmod 600 %s)",
			ErrKey, path, st.Mode().Perm(), path)
	}
	key, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("ticket: key file %s: %w", path, err)
	case len(key) > maxKeyFile:
		return nil, fmt.Errorf("ticket: %w: %s is over %d bytes: not a key file", ErrKey, path, maxKeyFile)
	case len(key) < KeySize:
		return nil, fmt.Errorf("ticket: %w: %s holds %d bytes, want at least %d", ErrKey, path, len(key), KeySize)
	}
	return key, nil
}

// LoadOrCreateKey loads the key file at path (see LoadKey) or, if there is
// none, creates it with KeySize random bytes and mode 0600 and reports
// created. The file appears whole or not at all, and two processes starting
// at once end up with the same key: it is written to a temporary file and
// linked into place, which fails if path exists already. The directory
// must exist.
func LoadOrCreateKey(path string) (key []byte, created bool, err error) {
	key, err = LoadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	if err := createKey(path); errors.Is(err, fs.ErrExist) {
		// Another process created it between our open and our link.
		key, err = LoadKey(path)
		return key, false, err
	} else if err != nil {
		return nil, false, err
	}
	key, err = LoadKey(path)
	return key, err == nil, err
}

// createKey writes a new key to path; the error wraps fs.ErrExist if path
// exists.
func createKey(path string) error {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("ticket: new key: %w", err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".ticket-key-*") // mode 0600
	if err != nil {
		return fmt.Errorf("ticket: new key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(key)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("ticket: new key %s: %w", tmp.Name(), err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("ticket: new key: %w", err)
	}
	// The link must survive a crash, or the next start makes another key
	// and every ticket minted meanwhile stops working.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("ticket: new key: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("ticket: new key: sync %s: %w", dir, err)
	}
	return nil
}
