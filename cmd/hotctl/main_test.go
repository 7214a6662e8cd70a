package main

import (
	"strings"
	"testing"
	"time"
)

func TestRoute(t *testing.T) {
	cases := []struct {
		args         []string
		method, path string
		bad          bool
	}{
		{[]string{"status"}, "GET", "/v1/status", false},
		{[]string{"rollback", "coin"}, "POST", "/v1/rollback?module=coin", false},
		{[]string{"pin", "coin", "1.0.0"}, "POST", "/v1/pin?module=coin&version=1.0.0", false},
		{[]string{"player", "42"}, "GET", "/v1/player?id=42", false},
		{[]string{"metrics"}, "GET", "/metrics", false},
		{[]string{"pin", "coin"}, "", "", true},
		{[]string{"status", "extra"}, "", "", true},
		{[]string{"explode"}, "", "", true},
	}
	for _, c := range cases {
		m, p, err := route(c.args)
		if c.bad {
			if err == nil {
				t.Errorf("route(%q) accepted", c.args)
			}
			continue
		}
		if err != nil || m != c.method || p != c.path {
			t.Errorf("route(%q) = %s %s %v, want %s %s", c.args, m, p, err, c.method, c.path)
		}
	}
}

func TestPrintVersions(t *testing.T) {
	at := time.Date(2026, 11, 30, 3, 4, 5, 0, time.UTC)
	body := `[
	 {"module":"coin","version":"5.0.2","state":"active","reason":"restored in place of 5.0.3, active before the restart: it is bad: host died","pinned":true,"changed_at":"` + at.Format(time.RFC3339) + `","loaded":true,"calls":12,"errors":1,"panics":0},
	 {"module":"coin","version":"5.0.3","state":"bad","reason":"host died: fatal error: stack overflow in coin 5.0.3 work","crashes":2,"loaded":false},
	 {"module":"coin","version":"9.0.1","state":"rejected","reason":"not a Go plugin","loaded":false,"loaded_at":"` + at.Format(time.RFC3339) + `"},
	 {"module":"shop","version":"1.0.0","state":"active","calls":3}
	]`
	var out strings.Builder
	if err := printVersions(&out, strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := [][]string{
		{"MODULE", "VERSION", "STATE", "CHANGED", "REASON"},
		{"coin", "5.0.2", "active", "pinned", "12/1/0", at.Local().Format("2006-01-02 15:04:05"), "restored in place of 5.0.3"},
		{"coin", "5.0.3", "bad (not loaded)", " 2 ", "host died: fatal error: stack overflow"},
		{"coin", "9.0.1", "rejected ", at.Local().Format("2006-01-02 15:04:05"), "not a Go plugin"},
		{"shop", "1.0.0", "active", "3/0/0"}, // a host that does not send the history fields
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, words := range want {
		for _, w := range words {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q does not contain %q", i, lines[i], w)
			}
		}
	}
	if err := printVersions(&out, strings.NewReader("<html>")); err == nil {
		t.Error("an unreadable answer was printed")
	}
}
