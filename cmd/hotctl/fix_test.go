package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrintDryRun(t *testing.T) {
	body := `{"fix":"coinfix","version":"1.0.0","doc":"undo the 10x coins","selection":"every player the fix selects",
	 "looked_at":7,"changed":3,"unchanged":1,"skipped":3,"failed":0,"complete":true,"took":"2ms",
	 "totals":[{"field":"Coins","players":3,"before_sum":300000,"after_sum":30000},{"field":"Name","players":1}],
	 "players":[{"id":1,"changes":[{"field":"Coins","before":100000,"after":10000},{"field":"Name","before":"Ada","after":"Bob"}]},
	            {"id":2,"changes":[{"field":"Coins","before":100000,"after":10000}]}]}`
	var out strings.Builder
	if err := printDryRun(&out, []byte(body)); err != nil {
		t.Fatal(err)
	}
	want := `DRY RUN of coinfix 1.0.0: nothing was changed
undo the 10x coins
selection: every player the fix selects
player 1
  Coins: 100000 -> 10000
  Name: "Ada" -> "Bob"
player 2
  Coins: 100000 -> 10000
(2 of 3 players listed)
looked at 7 players: 3 would change, 1 unchanged, 3 not selected, 0 failed (took 2ms)
totals:
  Coins: 3 players, total 300000 -> 30000
  Name: 1 players
`
	if out.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out.String(), want)
	}
	if err := printDryRun(&out, []byte("<html>")); err == nil {
		t.Fatal("an unreadable answer was printed")
	}
}

func TestPrintRun(t *testing.T) {
	body := `{"id":"20261130T031500.000Z-coinfix-1.0.0","fix":"coinfix","version":"1.0.0","file":"data/fixes/coinfix-1.0.0.so",
	 "selection":"players 1-3","status":"done","snapshot":"data/fixes/runs/x.hhsnap","players":3,"applied":2,"skipped":1,
	 "totals":[{"field":"Coins","players":2,"before_sum":200000,"after_sum":20000}],
	 "diffs":[{"id":1,"changes":[{"field":"Coins","before":100000,"after":10000}]}],
	 "undo":{"at":"2026-11-30T03:20:00Z","who":"unix uid=0 pid=1","restored":1,"already":0,
	         "conflicts":[{"id":2,"changed_since":[{"field":"Coins","before":10000,"after":10010}]}]}}`
	var out strings.Builder
	if err := printRun(&out, []byte(body)); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"run 20261130T031500.000Z-coinfix-1.0.0: done\n",
		"snapshot taken before: data/fixes/runs/x.hhsnap\n",
		"players 3: applied 2, unchanged 0, skipped 1, failed 0, pending 0\n",
		"  Coins: 2 players, total 200000 -> 20000\n",
		"player 1\n  Coins: 100000 -> 10000\n(1 of 2 applied players listed)\n",
		"restored 1, already 0, forced 0, missing 0, conflicts 1\n",
		"  conflict player 2 (changed since the fix, left alone): Coins: 10000 -> 10010\n",
		"hotctl fix undo 20261130T031500.000Z-coinfix-1.0.0 -force\n",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("run print lacks %q:\n%s", line, out.String())
		}
	}
}

func TestPrintRuns(t *testing.T) {
	body := `[{"id":"r2","status":"interrupted","fix":"coinfix","version":"1.0.1","players":5000,"applied":2400,"pending":2600},
	 {"id":"r1","status":"done","fix":"coinfix","version":"1.0.0","players":3,"applied":3,"undo":{"restored":2,"conflicts":[{"id":1}]}}]`
	var out strings.Builder
	if err := printRuns(&out, []byte(body)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "interrupted") || !strings.Contains(lines[1], "2600") ||
		!strings.Contains(lines[2], "2 (1 conflicts)") {
		t.Fatalf("runs table:\n%s", out.String())
	}
}

// TestFixUsage: wrong arguments are usage errors (exit 2), before any call.
func TestFixUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"explode"}, {"dry-run"}, {"undo", "a", "b"}, {"apply", "x.so", "-deadline", "soon"}} {
		var out, errs strings.Builder
		env := fixEnv{socket: filepath.Join(t.TempDir(), "none.sock"), stdout: &out, stderr: &errs}
		if code := fixCmd(args, env); code != 2 {
			t.Errorf("%q: exit %d (%s), want 2", args, code, errs.String())
		}
	}
}

// TestStage: a fix given by a path outside the host's fix folder is copied
// there with its sidecars; a different file of the same name there is not
// overwritten.
func TestStage(t *testing.T) {
	data, build := t.TempDir(), t.TempDir()
	so := filepath.Join(build, "coinfix-1.0.0.so")
	for ext, body := range map[string]string{"": "plugin bytes", ".sha256": "sum  coinfix-1.0.0.so\n"} {
		if err := os.WriteFile(so+ext, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := fixEnv{socket: filepath.Join(data, "admin.sock")}
	name, err := env.stage(so)
	if err != nil || name != "coinfix-1.0.0.so" {
		t.Fatalf("stage: %q %v", name, err)
	}
	for _, ext := range []string{"", ".sha256"} {
		if b, err := os.ReadFile(filepath.Join(data, "fixes", name+ext)); err != nil || len(b) == 0 {
			t.Fatalf("%s not copied: %v", name+ext, err)
		}
	}
	if name, err := env.stage(so); err != nil || name != "coinfix-1.0.0.so" {
		t.Fatalf("staging the same file again: %q %v", name, err)
	}
	if err := os.WriteFile(so, []byte("another build"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := env.stage(so); err == nil || !strings.Contains(err.Error(), "new version") {
		t.Fatalf("a different file of the same name: %v", err)
	}
	if name, err := env.stage("coinfix-2.0.0.so"); err != nil || name != "coinfix-2.0.0.so" {
		t.Fatalf("a name only: %q %v", name, err)
	}
}
