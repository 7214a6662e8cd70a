// Package sidecar defines the files that travel with a plugin: its checksum
// (<file>.sha256, in sha256sum's format), its optional ed25519 signature
// (<file>.sig) and the key files. The build tool writes them and the loader
// reads them; keeping both sides here means they cannot drift apart.
//
// It has no cgo and no plugin dependency, so tools can use it freely.
package sidecar

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Suffixes of the sidecar files, appended to the plugin's file name.
const (
	SumSuffix = ".sha256"
	SigSuffix = ".sig"
)

// ErrMalformed reports a sidecar or key file that cannot be parsed.
var ErrMalformed = errors.New("malformed sidecar or key file")

// FileSum returns the sha256 of the file at path.
func FileSum(path string) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, fmt.Errorf("hash %s: %w", path, err)
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// FormatSum is the content of a .sha256 sidecar, as sha256sum prints it, so
// an operator can check a file with `sha256sum -c`.
func FormatSum(sum [32]byte, base string) []byte {
	return []byte(hex.EncodeToString(sum[:]) + "  " + base + "\n")
}

// ParseSum reads the digest from a .sha256 sidecar's content.
func ParseSum(b []byte) ([32]byte, error) {
	var sum [32]byte
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return sum, fmt.Errorf("%w: empty checksum file", ErrMalformed)
	}
	d, err := hex.DecodeString(fields[0])
	if err != nil || len(d) != len(sum) {
		return sum, fmt.Errorf("%w: checksum %.20q is not 64 hex digits", ErrMalformed, fields[0])
	}
	copy(sum[:], d)
	return sum, nil
}

// SignedMessage is what a plugin's signature covers: the file's base name
// and its digest, so a signed file cannot be passed off under another name.
func SignedMessage(base string, sum [32]byte) []byte {
	msg := make([]byte, 0, 32+len(base)+len(sum))
	msg = append(msg, "hothost-plugin-v1\x00"...)
	msg = append(msg, base...)
	msg = append(msg, 0)
	return append(msg, sum[:]...)
}

// Sign returns the .sig content for a file with the given base name and digest.
func Sign(key ed25519.PrivateKey, base string, sum [32]byte) []byte {
	return []byte(hex.EncodeToString(ed25519.Sign(key, SignedMessage(base, sum))) + "\n")
}

// Verify checks .sig content against the public key.
func Verify(pub ed25519.PublicKey, base string, sum [32]byte, sig []byte) error {
	s, err := hex.DecodeString(strings.TrimSpace(string(sig)))
	if err != nil || len(s) != ed25519.SignatureSize {
		return fmt.Errorf("%w: signature is not %d hex bytes", ErrMalformed, ed25519.SignatureSize)
	}
	if !ed25519.Verify(pub, SignedMessage(base, sum), s) {
		return errors.New("signature does not match the file and the configured public key")
	}
	return nil
}

// GenerateKey writes a new key pair: prefix+".key" (the private seed,
// mode 0600) and prefix+".pub". Give the .key to the build, the .pub to the host.
func GenerateKey(prefix string) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(prefix+".key", []byte(base64.StdEncoding.EncodeToString(priv.Seed())+"\n"), 0o600); err != nil {
		return err
	}
	return WriteFileAtomic(prefix+".pub", []byte(base64.StdEncoding.EncodeToString(pub)+"\n"), 0o644)
}

// ReadPrivateKey reads a .key file written by GenerateKey.
func ReadPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := readKey(path, ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	return ed25519.NewKeyFromSeed(b), nil
}

// ReadPublicKey reads a .pub file written by GenerateKey.
func ReadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := readKey(path, ed25519.PublicKeySize)
	if err != nil {
		return nil, err
	}
	return ed25519.PublicKey(b), nil
}

func readKey(path string, size int) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(b) != size {
		return nil, fmt.Errorf("%w: %s: want %d base64-encoded bytes", ErrMalformed, path, size)
	}
	return b, nil
}

// WriteFileAtomic writes data to a hidden temporary file in path's
// directory and renames it into place, so a reader sees all or nothing.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
