package main

import "testing"

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
