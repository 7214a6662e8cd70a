package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// dashboardCookie carries the key from the printed URL: every request to
// the local port needs it, since any local user can reach that port while
// only the host's user can reach the admin socket behind it.
const dashboardCookie = "hotctl_dashboard"

// dashboardCmd runs `hotctl dashboard [-listen 127.0.0.1:0]`: it serves the
// host's dashboard (/dashboard/, which the host embeds) and its admin API
// (/v1/) on a local port, forwarding each request to the admin socket (or
// to -addr with the token), and prints the URL to open. It runs until
// interrupted. Actions taken in the page reach the host as hotctl's calls
// and are audited there as such.
func dashboardCmd(args []string, a *adminClient, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("hotctl dashboard", flag.ContinueOnError)
	flags.SetOutput(stderr)
	listen := flags.String("listen", "127.0.0.1:0", "local address to serve the dashboard on")
	flags.Usage = func() { fmt.Fprintln(stderr, "usage: hotctl dashboard [-listen 127.0.0.1:0]"); flags.PrintDefaults() }
	pos, err := parseInterleaved(flags, args)
	if code, done := usageError(flags, stderr, err, len(pos) == 0); done {
		return code
	}
	// The host must answer before a URL is handed out that would not work.
	if _, err := a.call("GET", "/v1/status", nil); err != nil {
		fmt.Fprintln(stderr, "hotctl dashboard:", err)
		return 1
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(stderr, "hotctl dashboard:", err)
		return 1
	}
	key := make([]byte, 16)
	rand.Read(key) // never fails (crypto/rand panics rather than return an error)
	srv := &http.Server{Handler: dashboardProxy(a, hex.EncodeToString(key), stderr), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "http://%s/?key=%s\n", ln.Addr(), hex.EncodeToString(key))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err = <-served:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = srv.Shutdown(sctx)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(stderr, "hotctl dashboard:", err)
		return 1
	}
	return 0
}

// dashboardProxy admits a browser that opened /?key=<key> (it gets the key
// as a same-site cookie and goes on to /dashboard/) and forwards its
// /dashboard/ and /v1/ requests to the host. State-changing calls must also
// carry the header the page sets, which a form on another site cannot.
func dashboardProxy(a *adminClient, key string, log io.Writer) http.Handler {
	base, _ := url.Parse(a.base) // built by newAdminClient: always valid
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(base)
			r.Out.Host = base.Host
			r.Out.Header.Del("Cookie")
			if a.token != "" {
				r.Out.Header.Set("Authorization", "Bearer "+a.token)
			}
		},
		Transport: a.http.Transport,
		ModifyResponse: func(resp *http.Response) error {
			if resp.Request.Method != http.MethodGet {
				fmt.Fprintf(log, "%s %s %s -> %s\n", time.Now().Format(time.TimeOnly), resp.Request.Method, resp.Request.URL.RequestURI(), resp.Status)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, `{"error": "hotctl dashboard: the host does not answer"}`, http.StatusBadGateway)
			fmt.Fprintln(log, "hotctl dashboard:", err)
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" && r.URL.Query().Has("key") {
			if !sameKey(r.URL.Query().Get("key"), key) {
				http.Error(w, "hotctl dashboard: wrong key: open the URL hotctl printed", http.StatusUnauthorized)
				return
			}
			http.SetCookie(w, &http.Cookie{Name: dashboardCookie, Value: key, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
			q := r.URL.Query() // the page's own parameters (poll=) go on with it
			q.Del("key")
			to := "/dashboard/"
			if len(q) > 0 {
				to += "?" + q.Encode()
			}
			http.Redirect(w, r, to, http.StatusSeeOther)
			return
		}
		c, err := r.Cookie(dashboardCookie)
		switch {
		case err != nil || !sameKey(c.Value, key):
			http.Error(w, "hotctl dashboard: open the URL hotctl printed (it carries the key)", http.StatusUnauthorized)
		case r.Method != http.MethodGet && r.Header.Get("X-Hothost-Dashboard") != "1":
			http.Error(w, "hotctl dashboard: actions come from the dashboard page only", http.StatusForbidden)
		case r.URL.Path == "/" || r.URL.Path == "/dashboard":
			http.Redirect(w, r, "/dashboard/", http.StatusSeeOther)
		case strings.HasPrefix(r.URL.Path, "/dashboard/") && r.Method == http.MethodGet, strings.HasPrefix(r.URL.Path, "/v1/"):
			proxy.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

func sameKey(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
