package ticket_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hothost/hothost/ticket"
)

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ticket.key")
	k1, created, err := ticket.LoadOrCreateKey(path)
	if err != nil || !created {
		t.Fatalf("first start: created %v, %v", created, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Size() != ticket.KeySize || len(k1) != ticket.KeySize {
		t.Fatalf("new key file: mode %v, %d bytes on disk, %d returned", st.Mode(), st.Size(), len(k1))
	}
	if bytes.Equal(k1, make([]byte, ticket.KeySize)) {
		t.Fatal("new key is all zeros")
	}
	k2, created, err := ticket.LoadOrCreateKey(path)
	if err != nil || created || !bytes.Equal(k1, k2) {
		t.Fatalf("second start: created %v, same key %v, %v", created, bytes.Equal(k1, k2), err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("directory holds %d files, want only the key (a temporary file left behind?)", len(entries))
	}
}

// Two hosts (or a host and hotctl) starting at once must not end up with two
// keys, one of them overwritten under the other.
func TestLoadOrCreateKeyRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ticket.key")
	const n = 16
	keys := make([][]byte, n)
	created := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], created[i], errs[i] = ticket.LoadOrCreateKey(path) })
	}
	wg.Wait()
	creators := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("starter %d: %v", i, errs[i])
		}
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("starter %d got another key than starter 0", i)
		}
		if created[i] {
			creators++
		}
	}
	onDisk, err := os.ReadFile(path)
	if creators != 1 || err != nil || !bytes.Equal(onDisk, keys[0]) {
		t.Fatalf("%d starters say they created the key; on disk matches: %v (%v)", creators, bytes.Equal(onDisk, keys[0]), err)
	}
}

func TestLoadKeyRefuses(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	long := bytes.Repeat([]byte("k"), ticket.KeySize)
	sub := filepath.Join(dir, "a-directory")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path, want string
	}{
		{"world-readable", write("0644.key", long, 0o644), "mode 0644, open to group or others (chmod 600 "},
		{"group-readable", write("0640.key", long, 0o640), "mode 0640"},
		{"world-writable only", write("0602.key", long, 0o602), "mode 0602"},
		{"short", write("short.key", long[:16], 0o600), "holds 16 bytes, want at least 32"},
		{"empty", write("empty.key", nil, 0o600), "holds 0 bytes"},
		{"huge", write("huge.key", bytes.Repeat(long, 200), 0o600), "over 4096 bytes"},
		{"directory", sub, "not a regular file"},
	} {
		_, err := ticket.LoadKey(c.path)
		if !errors.Is(err, ticket.ErrKey) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrKey saying %q", c.name, err, c.want)
		}
		// Refused, never replaced: a key file with the wrong mode is the
		// operator's to fix, and a new key would void every ticket.
		before, _ := os.ReadFile(c.path)
		if _, _, err := ticket.LoadOrCreateKey(c.path); !errors.Is(err, ticket.ErrKey) {
			t.Errorf("%s: LoadOrCreateKey = %v, want ErrKey", c.name, err)
		}
		if after, _ := os.ReadFile(c.path); !bytes.Equal(before, after) {
			t.Errorf("%s: LoadOrCreateKey changed the file", c.name)
		}
	}
	if _, err := ticket.LoadKey(filepath.Join(dir, "absent.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("absent key file: %v, want fs.ErrNotExist", err)
	}
	if _, _, err := ticket.LoadOrCreateKey(filepath.Join(dir, "no-such-dir", "ticket.key")); err == nil || errors.Is(err, ticket.ErrKey) {
		t.Errorf("key in a missing directory: %v, want the file system's error", err)
	}
}
