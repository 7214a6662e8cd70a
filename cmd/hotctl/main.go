// Command hotctl is the admin client of a running hothost.
//
// It talks HTTP to the host's admin API: on the Unix socket by default
// (only the host's user can open it), or on TCP with -addr and a bearer
// token. Every call is written to the host's audit log.
//
// `hotctl ticket` is the exception: it mints a login ticket from the host's
// key file (<data>/ticket.key) without talking to the host.
//
// `hotctl dashboard` serves the host's live dashboard on a local port and
// forwards the page's calls to the admin API; it admits only a browser
// that opened the URL it printed, since other local users can reach the
// port but not the socket.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const usage = `hotctl: manage a running hothost

Usage:
  hotctl [flags] <command> [args]

Commands:
  status                      uptime, how the state was opened, players, lanes, active versions, config, snapshot
  versions                    every plugin version seen, across restarts: state (active, standby, rejected,
                              rolled back, bad), pin, crashes, counters, when it last changed and why
  activate <module> <version> make a loaded version active now
  rollback <module>           go back to the version that was active before
  pin <module> <version>      activate and keep this version (new files no longer take over)
  unpin <module>              let the newest compatible version take over again
  reload                      poll the plugin and config directories now
  player <id>                 a player's state, decoded through the stored schema, and its pending timers
  player export <id> [-o file]
                              the player as a JSON document (values by field name, with the layout)
  player import <file> [-id N] [-replace]
                              write an exported player into this host ("-" reads stdin), converted
                              by field name; -id imports it as another player, -replace overwrites one
  dashboard [-listen 127.0.0.1:0]
                              serve the host's live dashboard on a local port and print its URL
  snapshot                    write a snapshot now
  drain                       refuse new requests (clients get "err draining")
  shutdown                    drain, final snapshot, clean shutdown (the supervisor stops too)
  metrics                     Prometheus metrics
  fix dry-run <fix.so> [-ids 1,2,5-9] [-limit 100]
                              what a repair plugin would change, field by field, with totals; changes nothing
  fix apply <fix.so> [-ids ...] [-deadline 10m] [-no-wait]
                              snapshot, then fix each selected player in its own transaction; follows the run
  fix resume|cancel <run>     go on with an interrupted or stopped run; stop a running one
  fix undo <run> [-force]     put back the fields the run changed (players changed since: conflicts)
  fix runs [<run>]            every run, or one with its totals, first diffs, failures and undo
                              (a <fix.so> path outside <data>/fixes is copied there, with its sidecars)
  upgrade [-wait 2m] [BINARY] a new worker from BINARY (default: the hothost binary's path again), clients kept
                              connected; follows it until the new worker serves, or it failed and the previous
                              binary serves again (exit status 1, with the reason)
  ticket <player> [-ttl 1h] [-key <data>/ticket.key]
                              mint a login ticket with the host's key (default: ticket.key
                              beside -socket); reads the key file, needs no running host

Flags:
`

func main() {
	fs := flag.NewFlagSet("hotctl", flag.ExitOnError)
	socket := fs.String("socket", "data/admin.sock", "admin Unix socket")
	addr := fs.String("addr", "", "admin TCP address (host:port) instead of the socket")
	token := fs.String("token", os.Getenv("HOTHOST_ADMIN_TOKEN"), "bearer token for -addr (default $HOTHOST_ADMIN_TOKEN)")
	timeout := fs.Duration("timeout", 10*time.Second, "request timeout")
	raw := fs.Bool("json", false, "print the host's JSON answer as is (versions prints a table otherwise)")
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage); fs.PrintDefaults() }
	fs.Parse(os.Args[1:])
	if fs.NArg() == 0 {
		fs.Usage()
		os.Exit(2)
	}
	if fs.Arg(0) == "ticket" {
		os.Exit(ticketCmd(fs.Args()[1:], filepath.Join(filepath.Dir(*socket), "ticket.key"), time.Now(), os.Stdout, os.Stderr))
	}
	admin := newAdminClient(*socket, *addr, *token, *timeout)
	switch cmd := fs.Arg(0); {
	case cmd == "fix":
		os.Exit(fixCmd(fs.Args()[1:], fixEnv{socket: *socket, addr: *addr, token: *token, timeout: *timeout, raw: *raw,
			stdout: os.Stdout, stderr: os.Stderr}))
	case cmd == "dashboard":
		os.Exit(dashboardCmd(fs.Args()[1:], admin, os.Stdout, os.Stderr))
	case cmd == "upgrade":
		os.Exit(upgradeCmd(fs.Args()[1:], admin, os.Stdout, os.Stderr))
	case cmd == "player" && fs.NArg() > 1:
		os.Exit(playerCmd(fs.Args()[1:], admin, os.Stdout, os.Stderr))
	}
	method, path, err := route(fs.Args())
	if err != nil {
		fmt.Fprintln(os.Stderr, "hotctl:", err)
		fs.Usage()
		os.Exit(2)
	}
	resp, err := admin.do(context.Background(), method, path, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hotctl:", err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	if fs.Arg(0) == "versions" && !*raw && resp.StatusCode == http.StatusOK {
		if err := printVersions(os.Stdout, resp.Body); err != nil {
			fmt.Fprintln(os.Stderr, "hotctl:", err)
			os.Exit(1)
		}
		return
	}
	io.Copy(os.Stdout, resp.Body)
	if resp.StatusCode >= 300 {
		fmt.Fprintf(os.Stderr, "hotctl: %s\n", resp.Status)
		os.Exit(1)
	}
}

// route maps a command line to the admin API call.
func route(args []string) (method, path string, err error) {
	q := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return "?" + v.Encode()
	}
	want := func(n int, form string) error {
		if len(args)-1 != n {
			return fmt.Errorf("usage: hotctl %s", form)
		}
		return nil
	}
	switch cmd := args[0]; cmd {
	case "status", "versions":
		return http.MethodGet, "/v1/" + cmd, want(0, cmd)
	case "metrics":
		return http.MethodGet, "/metrics", want(0, cmd)
	case "reload", "snapshot", "drain", "shutdown":
		return http.MethodPost, "/v1/" + cmd, want(0, cmd)
	case "activate", "pin":
		if err := want(2, cmd+" <module> <version>"); err != nil {
			return "", "", err
		}
		return http.MethodPost, "/v1/" + cmd + q("module", args[1], "version", args[2]), nil
	case "rollback", "unpin":
		if err := want(1, cmd+" <module>"); err != nil {
			return "", "", err
		}
		return http.MethodPost, "/v1/" + cmd + q("module", args[1]), nil
	case "player":
		if err := want(1, "player <id>"); err != nil {
			return "", "", err
		}
		return http.MethodGet, "/v1/player" + q("id", args[1]), nil
	default:
		return "", "", fmt.Errorf("unknown command %q (commands: %s)", cmd,
			strings.Join([]string{"status", "versions", "activate", "rollback", "pin", "unpin", "reload", "player", "snapshot", "drain", "shutdown", "metrics", "dashboard", "ticket"}, ", "))
	}
}
