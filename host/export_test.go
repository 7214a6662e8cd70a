package host_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hothost/hothost/host"
	"github.com/hothost/hothost/internal/hostproc"
	"github.com/hothost/hothost/shmpool"
)

// runHotctl runs the real hotctl against p's admin socket.
func runHotctl(t *testing.T, p *hostproc.Proc, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(bins.Hotctl, append([]string{"-socket", p.Socket}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// startPeer starts a second host beside the one of cfg: its own work
// directory and segment, the same plugins.
func startPeer(t *testing.T, cfg hostproc.Config) *hostproc.Proc {
	t.Helper()
	peer := cfg
	peer.Dir, peer.StateName = t.TempDir(), cfg.StateName+"-peer"
	plugins := filepath.Join(peer.Dir, "plugins-dir")
	os.MkdirAll(plugins, 0o700)
	for _, so := range []string{"coin-1.0.0.so", "shop-1.0.0.so", "profile-1.0.0.so"} {
		if err := hostproc.Install(filepath.Join(staging, so), plugins); err != nil {
			t.Fatal(err)
		}
	}
	return start(t, peer)
}

func playerState(t *testing.T, p *hostproc.Proc, id string) map[string]any {
	t.Helper()
	var v struct {
		State map[string]any `json:"state"`
	}
	if err := p.Admin(context.Background(), "GET", "/v1/player?id="+id, &v); err != nil {
		t.Fatal(err)
	}
	return v.State
}

func TestExportImportBetweenHosts(t *testing.T) {
	t.Parallel()
	a, cfg := startHost(t)
	c := dial(t, a, 7)
	for _, line := range []string{"work", "work", "buy potion", "name Ada"} {
		if r := do(t, c, line); !r.OK {
			t.Fatalf("%s: %s", line, r)
		}
	}
	file := filepath.Join(t.TempDir(), "player-7.json")
	if _, stderr, err := runHotctl(t, a, "player", "export", "7", "-o", file); err != nil {
		t.Fatalf("hotctl player export: %v\n%s", err, stderr)
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("exported file: %v, mode %v; want 0600", err, st.Mode())
	}

	b := startPeer(t, cfg)
	out, stderr, err := runHotctl(t, b, "player", "import", file)
	if err != nil || !strings.Contains(out, `"created": true`) {
		t.Fatalf("hotctl player import: %v\n%s%s", err, out, stderr)
	}
	want := playerState(t, a, "7")
	if got := playerState(t, b, "7"); !reflect.DeepEqual(got, want) {
		t.Fatalf("player 7 on the second host = %v, want %v", got, want)
	}
	// The game on the second host carries on with the imported state.
	if r := do(t, dial(t, b, 7), "whoami"); !strings.Contains(r.Text, "player 7 name Ada coins 15") {
		t.Fatalf("whoami on the second host: %s", r)
	}
	// Under another id; then over an existing player only with -replace.
	if _, stderr, err := runHotctl(t, b, "player", "import", file, "-id", "8"); err != nil {
		t.Fatalf("import as player 8: %v\n%s", err, stderr)
	}
	if got := playerState(t, b, "8"); !reflect.DeepEqual(got, want) {
		t.Fatalf("player 8 = %v, want %v", got, want)
	}
	do(t, dial(t, b, 8), "work")
	if _, stderr, err := runHotctl(t, b, "player", "import", "-id", "8", file); err == nil || !strings.Contains(stderr, "409") || !strings.Contains(stderr, "player exists") {
		t.Fatalf("import over player 8 without -replace: %v %s, want 409 player exists", err, stderr)
	}
	if _, stderr, err := runHotctl(t, b, "player", "import", "-replace", "-id", "8", file); err != nil {
		t.Fatalf("import -replace: %v\n%s", err, stderr)
	}
	if got := playerState(t, b, "8"); !reflect.DeepEqual(got, want) {
		t.Fatalf("player 8 after -replace = %v, want %v", got, want)
	}
}

func TestImportRefusesIncompatibleAndMalformedDocuments(t *testing.T) {
	t.Parallel()
	p, cfg := startHost(t)
	do(t, dial(t, p, 7), "work")
	exported, stderr, err := runHotctl(t, p, "player", "export", "7")
	if err != nil {
		t.Fatalf("export: %v\n%s", err, stderr)
	}
	// A document from a build whose Coins was a float64: the layout and
	// its fingerprint agree, but an int64 cannot take it without a MigrateFunc.
	var doc map[string]any
	if err := json.Unmarshal([]byte(exported), &doc); err != nil {
		t.Fatal(err)
	}
	var layout shmpool.Layout
	raw, _ := json.Marshal(doc["layout"])
	if err := json.Unmarshal(raw, &layout); err != nil {
		t.Fatal(err)
	}
	if layout.Type.Fields[0].Name != "Coins" {
		t.Fatalf("the example game's first field is %s, this test edits Coins", layout.Type.Fields[0].Name)
	}
	layout.Type.Fields[0].Type.Kind = shmpool.Float64
	fp := layout.Fingerprint()
	doc["layout"], doc["fingerprint"] = layout, hex.EncodeToString(fp[:])
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	incompatible, _ := json.Marshal(doc)
	malformed := []byte(exported[:len(exported)/2])

	before, players := playerState(t, p, "7"), hostStatus(t, p)
	for _, c := range []struct {
		file, id, want string
	}{
		{write("float.json", incompatible), "7", "Coins float64 -> int64: kind changed"},
		{write("float.json", incompatible), "99", "Coins float64 -> int64: kind changed"},
		{write("half.json", malformed), "7", "400 Bad Request: import: state: bad player document: malformed JSON"},
		{write("half.json", malformed), "99", "malformed JSON"},
		{write("big.json", []byte(`{"format": "hothost-player/1", "state": "`+strings.Repeat("x", 8<<20)+`"}`)), "7",
			"413 Request Entity Too Large: import: a player document is at most 8388608 bytes"},
	} {
		_, stderr, err := runHotctl(t, p, "player", "import", c.file, "-id", c.id, "-replace")
		if err == nil || !strings.Contains(stderr, c.want) {
			t.Fatalf("import %s as %s: %v %q, want an error saying %q", filepath.Base(c.file), c.id, err, stderr, c.want)
		}
	}
	if got := playerState(t, p, "7"); !reflect.DeepEqual(got, before) {
		t.Fatalf("refused imports changed player 7: %v, was %v", got, before)
	}
	if err := p.Admin(context.Background(), "GET", "/v1/player?id=99", nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("player 99 after refused imports: %v, want 404", err)
	}
	if got := hostStatus(t, p); got.State.Players != players.State.Players {
		t.Fatalf("refused imports changed the player count: %d, was %d", got.State.Players, players.State.Players)
	}
	// Every call is in the audit log, refusals with their status.
	want := []string{"GET /v1/player/export?id=7 200", "POST /v1/player/import?id=7&replace=1 409", "POST /v1/player/import?id=99&replace=1 409",
		"POST /v1/player/import?id=7&replace=1 400", "POST /v1/player/import?id=99&replace=1 400", "POST /v1/player/import?id=7&replace=1 413"}
	if got := auditLines(t, cfg, "/v1/player/"); !reflect.DeepEqual(got, want) {
		t.Fatalf("audit log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func hostStatus(t *testing.T, p *hostproc.Proc) host.Status {
	t.Helper()
	var st host.Status
	if err := p.Admin(context.Background(), "GET", "/v1/status", &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// auditLines is the host's audit log as "METHOD what status" lines, for
// the calls whose path contains filter.
func auditLines(t *testing.T, cfg hostproc.Config, filter string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(cfg.Dir, "data", "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e struct {
			Method, What string
			Status       int
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		if strings.Contains(e.What, filter) {
			out = append(out, fmt.Sprintf("%s %s %d", e.Method, e.What, e.Status))
		}
	}
	return out
}
