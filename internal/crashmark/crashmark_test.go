package crashmark

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func marksPath(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/dev/shm", "hothost-crashmark-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return filepath.Join(d, "marks")
}

// TestMain lets the test binary be the process that dies: with
// CRASHMARK_CHILD set it marks lane 3 and waits to be killed.
func TestMain(m *testing.M) {
	if path := os.Getenv("CRASHMARK_CHILD"); path != "" {
		b, _, err := Open(path, 8)
		if err != nil {
			os.Exit(3)
		}
		b.Set(3, 4242, 17, "coin", "5.0.1", "work")
		b.Set(5, 7, 18, "shop", "1.0.0", "buy")
		b.Clear(5)
		os.Stdout.WriteString("marked\n")
		select {}
	}
	os.Exit(m.Run())
}

func TestMarksSurviveKill9(t *testing.T) {
	path := marksPath(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CRASHMARK_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := out.Read(buf); err != nil || string(buf) != "marked\n" {
		t.Fatalf("child: %q %v", buf, err)
	}
	cmd.Process.Kill() // SIGKILL: no deferred code runs
	cmd.Wait()

	b, left, err := Open(path, 8)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 {
		t.Fatalf("left marks %v, want lane 3 only", left)
	}
	m := left[0]
	if m.Lane != 3 || m.Player != 4242 || m.Started.UnixNano() != 17 || m.Module != "coin" || m.Version != "5.0.1" || m.Msg != "work" {
		t.Fatalf("mark %+v", m)
	}
	if len(b.Active()) != 0 {
		t.Fatalf("marks still active after Open: %v", b.Active())
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Close left the file: %v", err)
	}
}

func TestInvalidFileReplaced(t *testing.T) {
	for name, poke := range map[string]func(path string){
		"size":  func(p string) { os.WriteFile(p, []byte("short"), 0o600) },
		"magic": func(p string) { pokeByte(t, p, 0) },
		"lanes": func(p string) { pokeByte(t, p, 8) },
	} {
		t.Run(name, func(t *testing.T) {
			path := marksPath(t)
			b, _, err := Open(path, 4)
			if err != nil {
				t.Fatal(err)
			}
			b.Set(1, 1, 1, "coin", "1.0.0", "work")
			poke(path)
			b2, left, err := Open(path, 4)
			if !errors.Is(err, ErrInvalid) || b2 == nil || len(left) != 0 {
				t.Fatalf("Open of a poked file: board %v, left %v, err %v", b2 != nil, left, err)
			}
			b2.Set(2, 9, 9, "x", "y", "z")
			if a := b2.Active(); len(a) != 1 || a[0].Player != 9 {
				t.Fatalf("replaced board marks %v", a)
			}
		})
	}
}

func TestLongNamesAreCut(t *testing.T) {
	b, _, err := Open(marksPath(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	long := "a-very-long-module-name-that-goes-on-and-on"
	b.Set(0, 1, 1, long, "1.0.0", "work")
	if m := b.Active()[0]; m.Module != long[:fieldLen-1] {
		t.Fatalf("module %q", m.Module)
	}
}

func pokeByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	f.ReadAt(b, off)
	b[0] ^= 0xff
	f.WriteAt(b, off)
}

func ExampleOpen() {
	dir, _ := os.MkdirTemp("/dev/shm", "hothost-crashmark-")
	defer os.RemoveAll(dir)
	b, left, _ := Open(filepath.Join(dir, "marks"), 64)
	fmt.Println("left by the last process:", len(left))
	b.Set(3, 42, time.Now().UnixNano(), "coin", "1.0.0", "work")
	// ... the handler runs; a crash here leaves the mark for the next Open ...
	b.Clear(3)
	b.Close()
	// Output: left by the last process: 0
}
