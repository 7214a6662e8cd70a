package shmpool_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hothost/hothost/shmpool"
)

// FuzzAttach feeds arbitrary bytes as a segment file: Open must return a
// usable pool or an error, never panic or fault.
func FuzzAttach(f *testing.F) {
	seedDir := f.TempDir()
	p, err := shmpool.Open[player]("seed", shmpool.Options{Dir: seedDir, Capacity: 4, AuxSize: 16})
	if err != nil {
		f.Fatal(err)
	}
	_, v, _ := p.Alloc()
	v.Coin = 1
	p.Close()
	seed, err := os.ReadFile(filepath.Join(seedDir, "seed"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:4096])
	f.Add([]byte("HHSHMPL\x00"))
	f.Add([]byte{})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "seg")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(path)
		p, err := shmpool.Open[player]("seg", shmpool.Options{Dir: dir, AttachOnly: true})
		if err == nil {
			for h, v := range p.All() {
				_ = v.Coin
				if _, err := p.Get(h); err != nil {
					t.Fatalf("All yielded %v but Get refuses it: %v", h, err)
				}
			}
			p.Close()
		}
		if r, err := shmpool.OpenRaw("seg", shmpool.Options{Dir: dir}); err == nil {
			for i := range r.Cap() {
				r.Slot(i)
			}
			r.Close()
		}
	})
}
