package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hothost/hothost/ticket"
)

// TestMain lets a test run this test binary as hotctl itself, in a child
// process: the real main, its flags and its exit code.
func TestMain(m *testing.M) {
	if os.Getenv("HOTCTL_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// hotctl runs hotctl with args in a child process.
func hotctl(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "HOTCTL_TEST_RUN_MAIN=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// The host's data directory holds admin.sock and ticket.key side by side;
// hotctl finds the key beside -socket.
func TestTicketCommand(t *testing.T) {
	data := t.TempDir()
	key, _, err := ticket.LoadOrCreateKey(filepath.Join(data, "ticket.key"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := ticket.NewVerifier(key)
	if err != nil {
		t.Fatal(err)
	}
	out, stderr, code := hotctl(t, "-socket", filepath.Join(data, "admin.sock"), "ticket", "42", "-ttl", "10m")
	if code != 0 || stderr != "" || !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Fatalf("exit %d, stdout %q, stderr %q; want one line", code, out, stderr)
	}
	tk := strings.TrimSuffix(out, "\n")
	after := time.Now() // past the ticket's iat, well before its exp
	if err := v.Verify(tk, 42, after); err != nil {
		t.Fatalf("the printed ticket does not verify: %v", err)
	}
	if err := v.Verify(tk, 43, after); !errors.Is(err, ticket.ErrOtherPlayer) {
		t.Fatalf("player 43 with 42's ticket: %v", err)
	}
	// -ttl 10m: valid for ten minutes from the run, no more.
	if err := v.Verify(tk, 42, after.Add(10*time.Minute)); !errors.Is(err, ticket.ErrExpired) {
		t.Fatalf("10m after: %v, want ErrExpired", err)
	}
}

func TestTicketCommandErrors(t *testing.T) {
	data := t.TempDir()
	good := filepath.Join(data, "ticket.key")
	if _, _, err := ticket.LoadOrCreateKey(good); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(data, "open.key")
	if err := os.WriteFile(open, bytes.Repeat([]byte("k"), 32), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-socket", filepath.Join(t.TempDir(), "admin.sock"), "ticket", "42"}, 1, "the host creates it at its first start"},
		{[]string{"ticket", "42", "-key", open}, 1, "chmod 600 " + open},
		{[]string{"ticket", "-key", good}, 2, "no player id"},
		{[]string{"ticket", "0", "-key", good}, 2, `player id "0" must be`},
		{[]string{"ticket", "ada", "-key", good}, 2, `player id "ada" must be`},
		{[]string{"ticket", "42", "43", "-key", good}, 2, `unexpected "43"`},
		{[]string{"ticket", "42", "-ttl", "soon", "-key", good}, 2, "invalid value"},
		{[]string{"ticket", "42", "-ttl", "0s", "-key", good}, 2, "under a second"},
	} {
		out, stderr, code := hotctl(t, c.args...)
		if code != c.code || out != "" || !strings.Contains(stderr, c.want) {
			t.Errorf("hotctl %q: exit %d, stdout %q, stderr %q; want exit %d saying %q", c.args, code, out, stderr, c.code, c.want)
		}
	}
}

// Flags go before or after the player id.
func TestTicketArgsEitherOrder(t *testing.T) {
	data := t.TempDir()
	path := filepath.Join(data, "ticket.key")
	key, _, err := ticket.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := ticket.NewVerifier(key)
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for _, args := range [][]string{
		{"7", "-ttl", "2h", "-key", path},
		{"-ttl", "2h", "7", "-key", path},
		{"-key", path, "-ttl=2h", "7"},
	} {
		var out, stderr bytes.Buffer
		if code := ticketCmd(args, "/nonexistent/ticket.key", now, &out, &stderr); code != 0 {
			t.Fatalf("%q: exit %d: %s", args, code, stderr.String())
		}
		tk := strings.TrimSpace(out.String())
		if err := v.Verify(tk, 7, now.Add(2*time.Hour-time.Second)); err != nil {
			t.Errorf("%q: %v", args, err)
		}
		if err := v.Verify(tk, 7, now.Add(2*time.Hour)); !errors.Is(err, ticket.ErrExpired) {
			t.Errorf("%q: at 2h: %v, want ErrExpired", args, err)
		}
	}
}
