package loader_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/loader"
	"github.com/hothost/hothost/loader/sidecar"
)

// histLoader is a Loader on dir keeping its history in hist, whose real
// preflight children are counted in preflights.
func histLoader(tb testing.TB, dir, hist string, preflights *atomic.Int64, opts loader.Options) *loader.Loader {
	tb.Helper()
	opts.Dir, opts.HistoryFile = dir, hist
	opts.Preflight = func(ctx context.Context, path string) (*loader.PreflightReport, error) {
		preflights.Add(1)
		return loader.ExecPreflight(ctx, path)
	}
	l := newLoader(tb, opts)
	if err := l.HistoryError(); err != nil {
		tb.Fatalf("history: %v", err)
	}
	return l
}

// onDisk reads the history file as a host's operator would: module
// version -> state.
func onDisk(tb testing.TB, hist string) map[string]string {
	tb.Helper()
	b, err := os.ReadFile(hist)
	if err != nil {
		tb.Fatal(err)
	}
	_, body, _ := bytes.Cut(b, []byte("\n"))
	var h struct {
		Versions []struct{ Module, Version, State string }
	}
	if err := json.Unmarshal(body, &h); err != nil {
		tb.Fatalf("history body: %v", err)
	}
	out := map[string]string{}
	for _, v := range h.Versions {
		out[v.Module+" "+v.Version] = v.State
	}
	return out
}

// decisions is everything a restart must keep, per history line.
func decisions(l *loader.Loader) map[string]string {
	out := map[string]string{}
	for _, vi := range l.Versions() {
		out[vi.Module+" "+vi.Version+" "+filepath.Base(vi.File)] = fmt.Sprintf("%s pinned=%t crashes=%d reason=%q loaded=%d activated=%d changed=%d",
			vi.State, vi.Pinned, vi.Crashes, vi.Reason, vi.LoadedAt.UnixNano(), vi.ActivatedAt.UnixNano(), vi.Changed.UnixNano())
	}
	return out
}

func diff(before, after map[string]string) string {
	var d []string
	for k, v := range before {
		if after[k] != v {
			d = append(d, fmt.Sprintf("%s:\n\tbefore %s\n\tafter  %s", k, v, after[k]))
		}
	}
	for k, v := range after {
		if _, ok := before[k]; !ok {
			d = append(d, fmt.Sprintf("%s: new line %s", k, v))
		}
	}
	return strings.Join(d, "\n")
}

func expectModules(t *testing.T, l *loader.Loader, want map[string]string) {
	t.Helper()
	if got := l.Current().Modules(); !maps.Equal(got, want) {
		t.Fatalf("active modules %v, want %v; history:\n%s", got, want, historyText(l))
	}
}

func historyText(l *loader.Loader) string {
	var b strings.Builder
	for _, vi := range l.Versions() {
		fmt.Fprintf(&b, "\t%s %s %s %s pinned=%t loaded=%t: %s\n", vi.Module, vi.Version, filepath.Base(vi.File), vi.State, vi.Pinned, vi.Loaded, vi.Reason)
	}
	return b.String()
}

// TestHistorySurvivesRestart: a rollback, a bad mark, a pin and a rejected
// file, then a new Loader on the same directory and history file (a
// restart): before its first poll it shows the same history; after it the
// active set is the same although newer files exist, every line is as it
// was (state, reason, pin, times), the bad version is never opened, no
// preflight child runs, and the rejected file still has its one line.
func TestHistorySurvivesRestart(t *testing.T) {
	so := buildAll(t,
		spec{tmpl: "coin", name: "coin", version: "11.0.0"},
		spec{tmpl: "coin", name: "coin", version: "11.1.0"},
		spec{tmpl: "coin", name: "coin", version: "11.2.0"},
		spec{tmpl: "shop", name: "shop", version: "11.0.0"},
		spec{tmpl: "shop", name: "shop", version: "11.1.0"},
	)
	dir, hist := t.TempDir(), filepath.Join(t.TempDir(), "versions.json")
	var preflights atomic.Int64
	l := histLoader(t, dir, hist, &preflights, loader.Options{})
	install(t, dir, so[0])
	install(t, dir, so[1])
	install(t, dir, so[3])
	junk := make([]byte, 4096)
	rand.Read(junk)
	writeWithSidecars(t, dir, "coin-11.9.0.so", junk, nil)
	if err := poll(t, l); !errors.Is(err, loader.ErrNotPlugin) {
		t.Fatalf("poll: %v, want the junk file's ErrNotPlugin", err)
	}
	expectModules(t, l, map[string]string{"coin": "11.1.0", "shop": "11.0.0"})
	if err := l.Rollback("coin"); err != nil {
		t.Fatal(err)
	}
	install(t, dir, so[2])
	if err := poll(t, l); err != nil {
		t.Fatal(err)
	}
	expectModules(t, l, map[string]string{"coin": "11.2.0", "shop": "11.0.0"})
	if err := l.MarkBad("coin", "11.2.0", "coin 11.2.0 work ran 2s for player 4242"); err != nil {
		t.Fatal(err)
	}
	if err := l.Pin("shop", "11.0.0"); err != nil {
		t.Fatal(err)
	}
	install(t, dir, so[4])
	if err := poll(t, l); err != nil {
		t.Fatal(err)
	}
	active := map[string]string{"coin": "11.0.0", "shop": "11.0.0"}
	expectModules(t, l, active)
	before := decisions(l)
	if n := preflights.Load(); n != 5 {
		t.Fatalf("%d preflights for 5 new plugins", n)
	}

	preflights.Store(0)
	l2 := histLoader(t, dir, hist, &preflights, loader.Options{})
	if d := diff(before, decisions(l2)); d != "" {
		t.Fatalf("history read back before the first poll differs:\n%s", d)
	}
	for _, vi := range l2.Versions() {
		if !vi.Restored || vi.Loaded {
			t.Fatalf("before the first poll: %s %s restored=%t loaded=%t", vi.Module, vi.Version, vi.Restored, vi.Loaded)
		}
	}
	if vi, _ := info(l2, "coin", "11.9.0"); !errors.Is(vi.Err, loader.ErrNotPlugin) {
		t.Fatalf("restored rejection: %v, want it to wrap ErrNotPlugin", vi.Err)
	}
	if err := poll(t, l2); !errors.Is(err, loader.ErrNotPlugin) {
		t.Fatalf("poll after restart: %v, want the junk file's ErrNotPlugin", err)
	}
	expectModules(t, l2, active)
	if d := diff(before, decisions(l2)); d != "" {
		t.Fatalf("history after the restart differs:\n%s", d)
	}
	if n := preflights.Load(); n != 0 {
		t.Errorf("%d preflight children at restart, want 0 (all recorded)", n)
	}
	for _, vi := range l2.Versions() {
		wantLoaded := vi.State != loader.StateBad && vi.State != loader.StateRejected
		if vi.Loaded != wantLoaded || vi.Loaded && !vi.PreflightReused {
			t.Errorf("%s %s (%s): loaded=%t preflight reused=%t", vi.Module, vi.Version, vi.State, vi.Loaded, vi.PreflightReused)
		}
	}
	if err := l2.Activate("coin", "11.2.0"); !errors.Is(err, loader.ErrNotLoaded) || !strings.Contains(err.Error(), "bad") {
		t.Errorf("Activate of the bad version after restart: %v, want ErrNotLoaded saying it is bad", err)
	}
	// The rolled-back version is loaded on standby: an operator can bring it back.
	if err := l2.Activate("coin", "11.1.0"); err != nil {
		t.Fatal(err)
	}
	expectModules(t, l2, map[string]string{"coin": "11.1.0", "shop": "11.0.0"})
}

// TestRestartReusesPreflight: at a restart, recorded active beats a newer
// good file, and files whose bytes, build and host are as recorded are not
// preflighted again; a file whose bytes changed is (and, being a new
// build, is decided like any new file).
func TestRestartReusesPreflight(t *testing.T) {
	so := buildAll(t, spec{tmpl: "coin", name: "coin", version: "13.0.0"}, spec{tmpl: "coin", name: "coin", version: "13.1.0"})
	dir, hist := t.TempDir(), filepath.Join(t.TempDir(), "versions.json")
	var (
		preflights atomic.Int64
		l          *loader.Loader
		activated  []string
	)
	// A version serves only once the history file says it is active: if
	// its first request kills the process, the next start knows it.
	onEvent := func(e loader.Event) {
		if e.Kind != loader.EventActivated {
			return
		}
		activated = append(activated, e.Version)
		if got := onDisk(t, hist)[e.Module+" "+e.Version]; got != string(loader.StateActive) {
			t.Errorf("%s %s activated while the history file says %q", e.Module, e.Version, got)
		}
		if got := l.Current().Modules()[e.Module]; got != e.Version {
			t.Errorf("%s %s activated while the table serves %q", e.Module, e.Version, got)
		}
	}
	l = histLoader(t, dir, hist, &preflights, loader.Options{OnEvent: onEvent})
	install(t, dir, so[0])
	install(t, dir, so[1])
	if err := poll(t, l); err != nil {
		t.Fatal(err)
	}
	if err := l.Activate("coin", "13.0.0"); err != nil {
		t.Fatal(err)
	}
	if strings.Join(activated, ",") != "13.0.0,13.1.0,13.0.0" {
		t.Fatalf("activations %v, want 13.0.0, 13.1.0, then 13.0.0 again", activated)
	}
	if n := preflights.Swap(0); n != 2 {
		t.Fatalf("%d preflights for 2 new plugins", n)
	}

	written, err := os.Stat(hist)
	if err != nil {
		t.Fatal(err)
	}
	l2 := histLoader(t, dir, hist, &preflights, loader.Options{})
	if err := poll(t, l2); err != nil {
		t.Fatal(err)
	}
	expectModules(t, l2, map[string]string{"coin": "13.0.0"})
	if st, err := os.Stat(hist); err != nil || !os.SameFile(st, written) || !st.ModTime().Equal(written.ModTime()) {
		t.Errorf("a start that changed nothing rewrote the history (%v)", err)
	}
	if n := preflights.Swap(0); n != 0 {
		t.Fatalf("%d preflights at restart, want 0", n)
	}
	old, _ := info(l2, "coin", "13.1.0")
	if old.State != loader.StateStandby || !old.PreflightReused {
		t.Fatalf("13.1.0 after restart: %+v, want standby with its preflight reused", old)
	}

	// The same file name with other bytes (one byte appended: still a
	// loadable plugin) is a new build: preflighted again.
	data, err := os.ReadFile(so[1])
	if err != nil {
		t.Fatal(err)
	}
	writeWithSidecars(t, dir, filepath.Base(so[1]), append(data, 0), nil)
	l3 := histLoader(t, dir, hist, &preflights, loader.Options{})
	if err := poll(t, l3); err != nil {
		t.Fatal(err)
	}
	if n := preflights.Load(); n != 1 {
		t.Fatalf("%d preflights after 13.1.0's bytes changed, want 1 (13.0.0 unchanged)", n)
	}
	var lines []loader.VersionInfo
	for _, vi := range l3.Versions() {
		if vi.Version == "13.1.0" {
			lines = append(lines, vi)
		}
	}
	if len(lines) != 2 || lines[0].SHA256 != old.SHA256 || lines[0].Loaded ||
		lines[1].SHA256 == old.SHA256 || !lines[1].Loaded || lines[1].PreflightReused {
		t.Fatalf("13.1.0 lines after its bytes changed:\n%s", historyText(l3))
	}
	if v, _ := info(l3, "coin", "13.0.0"); !v.PreflightReused {
		t.Error("13.0.0 was preflighted again although unchanged")
	}
	// A new build of a version is a deployment: the usual rules make it active.
	expectModules(t, l3, map[string]string{"coin": "13.1.0"})
}

// TestRestoreFallsBack: the version active (and pinned) before a restart
// has lost its file: the version that served before it takes over, its
// reason and the log say why, the pin is removed, and the next restart
// keeps that. MarkBad works on the version known only from the history.
func TestRestoreFallsBack(t *testing.T) {
	so := buildAll(t, spec{tmpl: "coin", name: "coin", version: "14.0.0"}, spec{tmpl: "coin", name: "coin", version: "14.1.0"})
	dir, hist := t.TempDir(), filepath.Join(t.TempDir(), "versions.json")
	var preflights atomic.Int64
	l := histLoader(t, dir, hist, &preflights, loader.Options{})
	install(t, dir, so[0])
	gone := install(t, dir, so[1])
	if err := poll(t, l); err != nil {
		t.Fatal(err)
	}
	if err := l.Pin("coin", "14.1.0"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{gone, gone + sidecar.SumSuffix} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}

	var events []loader.Event
	l2 := histLoader(t, dir, hist, &preflights, loader.Options{OnEvent: func(e loader.Event) { events = append(events, e) }})
	if err := poll(t, l2); err != nil {
		t.Fatal(err)
	}
	expectModules(t, l2, map[string]string{"coin": "14.0.0"})
	now, _ := info(l2, "coin", "14.0.0")
	was, _ := info(l2, "coin", "14.1.0")
	if !strings.Contains(now.Reason, "in place of 14.1.0") || !strings.Contains(now.Reason, "is gone") {
		t.Errorf("14.0.0's reason %q does not say it replaces 14.1.0, whose file is gone", now.Reason)
	}
	if was.State != loader.StateStandby || was.Loaded || was.Pinned || !strings.Contains(was.Reason, "is gone") {
		t.Errorf("14.1.0 after restart: %+v", was)
	}
	var unpinned bool
	for _, e := range events {
		unpinned = unpinned || e.Kind == loader.EventUnpinned && e.Version == "14.1.0" && strings.Contains(e.Reason, "pin to 14.1.0 removed")
	}
	if !unpinned {
		t.Errorf("no unpinned event for the pin that could not hold: %+v", events)
	}
	if err := l2.MarkBad("coin", "14.1.0", "operator: never again"); err != nil {
		t.Fatal(err)
	}
	if err := l2.MarkBad("coin", "14.7.0", "no such version"); !errors.Is(err, loader.ErrUnknownVersion) {
		t.Errorf("MarkBad of an unknown version: %v, want ErrUnknownVersion", err)
	}
	before := decisions(l2)

	l3 := histLoader(t, dir, hist, &preflights, loader.Options{})
	if err := poll(t, l3); err != nil {
		t.Fatal(err)
	}
	expectModules(t, l3, map[string]string{"coin": "14.0.0"})
	if d := diff(before, decisions(l3)); d != "" {
		t.Fatalf("history after the second restart differs:\n%s", d)
	}
	if vi, _ := info(l3, "coin", "14.1.0"); vi.State != loader.StateBad || vi.Reason != "operator: never again" {
		t.Errorf("14.1.0 after MarkBad and a restart: %+v", vi)
	}
}

// TestRecordCrashQuarantine: the quarantine rules. A first crash long
// after activation is counted, nothing more; a second crash of the same
// version (recorded at start, before the first poll, with the version known
// only from the history) quarantines it and the previous good version
// serves; a first crash within the probation window of an activation
// quarantines at once. Crash counts and quarantines survive restarts, and a
// plugin path from a stack frame names its version from the history.
func TestRecordCrashQuarantine(t *testing.T) {
	so := buildAll(t,
		spec{tmpl: "coin", name: "coin", version: "12.0.0"},
		spec{tmpl: "coin", name: "coin", version: "12.1.0"},
		spec{tmpl: "coin", name: "coin", version: "12.2.0"},
	)
	dir, hist := t.TempDir(), filepath.Join(t.TempDir(), "versions.json")
	var (
		preflights atomic.Int64
		evMu       sync.Mutex
		events     []loader.Event
	)
	opts := loader.Options{ProbationWindow: time.Hour, OnEvent: func(e loader.Event) {
		evMu.Lock()
		events = append(events, e)
		evMu.Unlock()
	}}
	l := histLoader(t, dir, hist, &preflights, opts)
	install(t, dir, so[0])
	install(t, dir, so[1])
	if err := poll(t, l); err != nil {
		t.Fatal(err)
	}
	expectModules(t, l, map[string]string{"coin": "12.1.0"})
	v121, _ := info(l, "coin", "12.1.0")
	if !strings.HasPrefix(v121.PluginPath, "hothostplugin/coin_12_1_0_") {
		t.Fatalf("12.1.0's plugin path %q is not the one hhbuild gives", v121.PluginPath)
	}

	// A suspected crash (no report, no exit status) inside the window does
	// not quarantine by itself: kill -9 from outside looks the same.
	q, err := l.RecordSuspectedCrash("coin", "12.1.0", "host exited (status unknown) while coin 12.1.0 ran work", v121.ActivatedAt.Add(time.Second))
	if err != nil || q {
		t.Fatalf("first crash, suspected, inside the window: quarantined=%t err=%v, want neither", q, err)
	}
	if vi, _ := info(l, "coin", "12.1.0"); vi.Crashes != 1 || vi.State != loader.StateActive {
		t.Fatalf("after a first, suspected crash: %+v", vi)
	}
	expectModules(t, l, map[string]string{"coin": "12.1.0"})
	if _, err := l.RecordCrash("coin", "12.9.9", "?", time.Time{}); !errors.Is(err, loader.ErrUnknownVersion) {
		t.Errorf("RecordCrash of an unknown version: %v, want ErrUnknownVersion", err)
	}

	// Restart: the crash that ended the last process is attributed before
	// the first poll, from a stack frame's function name.
	preflights.Store(0)
	l2 := histLoader(t, dir, hist, &preflights, opts)
	m, v, ok := l2.VersionByPluginPath(v121.PluginPath + ".work")
	if !ok || m != "coin" || v != "12.1.0" {
		t.Fatalf("VersionByPluginPath(%s.work) before the first poll = %q %q %t", v121.PluginPath, m, v, ok)
	}
	if _, _, ok := l2.VersionByPluginPath("hothostplugin/coin_12_1_0_0000000000000000.work"); ok {
		t.Error("an unknown plugin path was attributed")
	}
	cause := "host died: fatal error: stack overflow in coin 12.1.0 work"
	if q, err := l2.RecordCrash("coin", "12.1.0", cause, v121.ActivatedAt.Add(3*time.Hour)); err != nil || !q {
		t.Fatalf("second crash: quarantined=%t err=%v, want quarantined", q, err)
	}
	if err := poll(t, l2); err != nil {
		t.Fatal(err)
	}
	expectModules(t, l2, map[string]string{"coin": "12.0.0"})
	bad, _ := info(l2, "coin", "12.1.0")
	if bad.State != loader.StateBad || !strings.Contains(bad.Reason, cause) || bad.Crashes != 2 || bad.Loaded {
		t.Fatalf("12.1.0 after its second crash: %+v", bad)
	}
	if good, _ := info(l2, "coin", "12.0.0"); !strings.Contains(good.Reason, "in place of 12.1.0") || !strings.Contains(good.Reason, cause) {
		t.Errorf("12.0.0's reason %q does not say whom it replaces and why", good.Reason)
	}
	if n := preflights.Load(); n != 0 {
		t.Errorf("%d preflights at restart (12.0.0 recorded, 12.1.0 quarantined), want 0", n)
	}

	// A crash within the window after an activation quarantines on the first.
	install(t, dir, so[2])
	if err := poll(t, l2); err != nil {
		t.Fatal(err)
	}
	expectModules(t, l2, map[string]string{"coin": "12.2.0"})
	v122, _ := info(l2, "coin", "12.2.0")
	cause2 := "host exited (status 7) while coin 12.2.0 ran work for player 2"
	if q, err := l2.RecordCrash("coin", "12.2.0", cause2, v122.ActivatedAt.Add(time.Second)); err != nil || !q {
		t.Fatalf("first crash within the window: quarantined=%t err=%v, want quarantined", q, err)
	}
	expectModules(t, l2, map[string]string{"coin": "12.0.0"})
	evMu.Lock()
	var quarantines []string
	for _, e := range events {
		if e.Kind == loader.EventQuarantined {
			quarantines = append(quarantines, e.Version)
		}
	}
	evMu.Unlock()
	if strings.Join(quarantines, ",") != "12.1.0,12.2.0" {
		t.Errorf("quarantined events for %v, want 12.1.0 and 12.2.0", quarantines)
	}

	preflights.Store(0)
	l3 := histLoader(t, dir, hist, &preflights, opts)
	if err := poll(t, l3); err != nil {
		t.Fatal(err)
	}
	expectModules(t, l3, map[string]string{"coin": "12.0.0"})
	for v, crashes := range map[string]int{"12.1.0": 2, "12.2.0": 1} {
		if vi, _ := info(l3, "coin", v); vi.State != loader.StateBad || vi.Crashes != crashes || vi.Loaded {
			t.Errorf("%s after another restart: %+v, want bad, %d crashes, not opened", v, vi, crashes)
		}
	}
	if n := preflights.Load(); n != 0 {
		t.Errorf("%d preflights at the third start, want 0", n)
	}
}

// TestHistoryCorrupt: bytes poked into a valid history file give the
// sentinel of the first check they break, in the documented order; the
// Loader still starts (with an empty history), keeps the bad file aside
// and writes a valid one.
func TestHistoryCorrupt(t *testing.T) {
	static := &abi.Module{Name: "histstatic", Version: "1.0.0", ABI: ">= 1.0",
		Handlers: map[string]abi.Handler{"hist_ping": func(c *abi.Call) error { return nil }}}
	opts := func(hist string) loader.Options {
		return loader.Options{Dir: t.TempDir(), HistoryFile: hist, Static: []*abi.Module{static}}
	}
	good := filepath.Join(t.TempDir(), "versions.json")
	newLoader(t, opts(good))
	valid, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	header, body, _ := bytes.Cut(valid, []byte("\n"))
	// reseal gives a body a correct header: only the entries' check can catch it.
	reseal := func(body []byte) []byte {
		h := fmt.Sprintf(`{"magic":"hothost-versions","format":1,"length":%d,"crc32c":"%08x"}`,
			len(body), crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)))
		return append([]byte(h+"\n"), body...)
	}
	if !bytes.Equal(reseal(body), valid) {
		t.Fatalf("the test's idea of the format is wrong:\n%s\n%s", valid, reseal(body))
	}
	replace := func(old, new string) []byte {
		if bytes.Count(valid, []byte(old)) != 1 {
			t.Fatalf("%q is not in the file once:\n%s", old, valid)
		}
		return bytes.Replace(valid, []byte(old), []byte(new), 1)
	}
	cases := []struct {
		name string
		data []byte
		want error
		says string
	}{
		{"empty file", []byte{}, loader.ErrHistoryTruncated, "empty"},
		{"bad magic", replace(`"hothost-versions"`, `"hothost-versiong"`), loader.ErrHistoryInvalid, "bad magic"},
		{"another file", []byte("PK\x03\x04 not a history\n"), loader.ErrHistoryInvalid, "bad magic"},
		{"header cut", valid[:len(header)-5], loader.ErrHistoryTruncated, "header line has no end"},
		{"format version", replace(`"format":1,`, `"format":7,`), loader.ErrHistoryVersion, "format 7, this build reads format 1"},
		{"body cut", valid[:len(valid)-9], loader.ErrHistoryTruncated, "the header says"},
		{"bytes appended", append(append([]byte(nil), valid...), "{}"...), loader.ErrHistoryInvalid, "2 bytes follow"},
		{"body changed", replace(`"histstatic"`, `"histstatik"`), loader.ErrHistoryChecksum, "CRC-32C"},
		{"resealed, unknown state", reseal(bytes.Replace(body, []byte(`"state": "active"`), []byte(`"state": "gone"`), 1)),
			loader.ErrHistoryInvalid, `unknown state "gone"`},
		{"resealed, not JSON", reseal([]byte("{\"versions\": [")), loader.ErrHistoryInvalid, "body"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hist := filepath.Join(t.TempDir(), "versions.json")
			if err := os.WriteFile(hist, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			l := newLoader(t, opts(hist))
			err := l.HistoryError()
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("HistoryError: %v, want %v saying %q", err, c.want, c.says)
			}
			t.Log(err)
			if _, ok := l.Current().Lookup("hist_ping"); !ok {
				t.Fatal("the loader did not start its static module")
			}
			aside, _ := filepath.Glob(hist + ".corrupt-*")
			if len(aside) != 1 || !strings.Contains(err.Error(), aside[0]) {
				t.Fatalf("moved aside: %v; error %v", aside, err)
			}
			if kept, _ := os.ReadFile(aside[0]); !bytes.Equal(kept, c.data) {
				t.Fatal("the file kept aside is not the bad file")
			}
			if l2 := newLoader(t, opts(hist)); l2.HistoryError() != nil {
				t.Fatalf("the history written after the bad one: %v", l2.HistoryError())
			}
		})
	}
}

// TestHistoryWriteFailure: a decision that cannot be saved takes effect,
// and says it will not survive a restart.
func TestHistoryWriteFailure(t *testing.T) {
	static := func(v string) *abi.Module {
		return &abi.Module{Name: "histwrite", Version: v, ABI: ">= 1.0",
			Handlers: map[string]abi.Handler{"hist_write": func(c *abi.Call) error { return nil }}}
	}
	histDir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(histDir, 0o700); err != nil {
		t.Fatal(err)
	}
	l := newLoader(t, loader.Options{Dir: t.TempDir(), HistoryFile: filepath.Join(histDir, "versions.json"),
		Static: []*abi.Module{static("1.0.0"), static("1.1.0")}})
	// The data directory goes away under the host (a wrong mount, say).
	if err := os.RemoveAll(histDir); err != nil {
		t.Fatal(err)
	}
	err := l.Rollback("histwrite")
	if !errors.Is(err, loader.ErrHistoryWrite) || !errors.Is(l.HistoryError(), loader.ErrHistoryWrite) {
		t.Fatalf("Rollback with an unwritable history: %v (HistoryError %v), want ErrHistoryWrite", err, l.HistoryError())
	}
	expectModules(t, l, map[string]string{"histwrite": "1.0.0"})
	if err := os.Mkdir(histDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := l.Pin("histwrite", "1.0.0"); err != nil || l.HistoryError() != nil {
		t.Fatalf("after the directory is writable again: %v, HistoryError %v", err, l.HistoryError())
	}
}
