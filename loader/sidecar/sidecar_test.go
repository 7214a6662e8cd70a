package sidecar_test

import (
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hothost/hothost/loader/sidecar"
)

// TestSignVerify: a signature made with a generated key verifies with its
// public half, and fails for other content, another name or another key.
func TestSignVerify(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"a", "b"} {
		if err := sidecar.GenerateKey(filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	priv, err := sidecar.ReadPrivateKey(filepath.Join(dir, "a.key"))
	if err != nil {
		t.Fatal(err)
	}
	pubA, err := sidecar.ReadPublicKey(filepath.Join(dir, "a.pub"))
	if err != nil {
		t.Fatal(err)
	}
	pubB, err := sidecar.ReadPublicKey(filepath.Join(dir, "b.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(dir, "a.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode: %v %v", st.Mode(), err)
	}
	sum := sha256.Sum256([]byte("plugin bytes"))
	sig := sidecar.Sign(priv, "coin-1.0.0.so", sum)
	if err := sidecar.Verify(pubA, "coin-1.0.0.so", sum, sig); err != nil {
		t.Fatalf("valid signature refused: %v", err)
	}
	other := sha256.Sum256([]byte("other bytes"))
	for name, err := range map[string]error{
		"other content": sidecar.Verify(pubA, "coin-1.0.0.so", other, sig),
		"other name":    sidecar.Verify(pubA, "coin-2.0.0.so", sum, sig),
		"other key":     sidecar.Verify(pubB, "coin-1.0.0.so", sum, sig),
	} {
		if err == nil {
			t.Errorf("%s: signature accepted", name)
		}
	}
	if err := sidecar.Verify(pubA, "coin-1.0.0.so", sum, []byte("zz")); !errors.Is(err, sidecar.ErrMalformed) {
		t.Errorf("garbage signature: %v, want ErrMalformed", err)
	}
}

// TestSum: the .sha256 format round-trips, as sha256sum writes it; garbage is refused.
func TestSum(t *testing.T) {
	path := filepath.Join(t.TempDir(), "coin-1.0.0.so")
	if err := sidecar.WriteFileAtomic(path, []byte("plugin bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := sidecar.FileSum(path)
	if err != nil {
		t.Fatal(err)
	}
	if sum != sha256.Sum256([]byte("plugin bytes")) {
		t.Fatal("FileSum differs from sha256.Sum256")
	}
	got, err := sidecar.ParseSum(sidecar.FormatSum(sum, "coin-1.0.0.so"))
	if err != nil || got != sum {
		t.Fatalf("round trip: %x, %v", got, err)
	}
	for _, bad := range []string{"", "abc  coin-1.0.0.so", "zz"} {
		if _, err := sidecar.ParseSum([]byte(bad)); !errors.Is(err, sidecar.ErrMalformed) {
			t.Errorf("ParseSum(%q): %v, want ErrMalformed", bad, err)
		}
	}
}
