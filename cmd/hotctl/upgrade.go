package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"time"

	"github.com/hothost/hothost/supervisor"
)

// upgradePoll is how often `hotctl upgrade` looks at the upgrade's progress.
const upgradePoll = 200 * time.Millisecond

// upgradeCmd runs `hotctl upgrade [-wait 2m] [BINARY]`: the supervisor of
// the host starts a worker from BINARY (default: the path of the running
// hothost binary again, for one replaced on disk), and the command follows
// it until the new worker serves, or the upgrade failed and the previous
// binary serves again (exit status 1, with the reason).
func upgradeCmd(args []string, admin *adminClient, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hotctl upgrade", flag.ContinueOnError)
	fs.SetOutput(stderr)
	wait := fs.Duration("wait", 2*time.Minute, "follow the upgrade this long (0: ask, do not follow)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 1 {
		fmt.Fprintln(stderr, "usage: hotctl upgrade [-wait 2m] [BINARY]")
		return 2
	}
	bin := fs.Arg(0)
	if bin != "" {
		abs, err := filepath.Abs(bin) // the supervisor's working directory is not ours
		if err != nil {
			fmt.Fprintln(stderr, "hotctl upgrade:", err)
			return 2
		}
		bin = abs
	}
	body, err := admin.call(http.MethodPost, "/v1/upgrade?binary="+url.QueryEscape(bin), nil)
	if err != nil {
		fmt.Fprintln(stderr, "hotctl upgrade:", err)
		return 1
	}
	var started struct {
		Supervisor supervisor.Status `json:"supervisor"`
	}
	if err := json.Unmarshal(body, &started); err != nil || started.Supervisor.LastUpgrade == nil {
		fmt.Fprintf(stderr, "hotctl upgrade: the host's answer names no upgrade (%v): %s\n", err, body)
		return 1
	}
	u := started.Supervisor.LastUpgrade
	fmt.Fprintf(stdout, "upgrade %d: %s -> %s\n", u.Seq, u.From, u.To)
	if *wait == 0 {
		return 0
	}
	return followUpgrade(admin, u.Seq, *wait, stdout, stderr)
}

// followUpgrade prints the upgrade's progress until it ends. Between the
// old worker and the new one nobody answers on the admin socket: that is
// waited out.
func followUpgrade(admin *adminClient, seq uint64, wait time.Duration, stdout, stderr io.Writer) int {
	deadline := time.Now().Add(wait)
	var last string
	var lastErr error
	for ; time.Now().Before(deadline); time.Sleep(upgradePoll) {
		b, err := admin.call(http.MethodGet, "/v1/supervisor", nil)
		var st supervisor.Status
		if err == nil {
			err = json.Unmarshal(b, &st)
		}
		if err != nil {
			lastErr = err
			continue
		}
		u := st.LastUpgrade
		if u == nil || u.Seq != seq {
			fmt.Fprintf(stderr, "hotctl upgrade: upgrade %d is no longer the supervisor's last (%+v)\n", seq, u)
			return 1
		}
		if line := upgradeProgress(st, u); line != last {
			fmt.Fprintln(stdout, line)
			last = line
		}
		if st.State != supervisor.StateReady {
			continue
		}
		switch u.State {
		case supervisor.UpgradeDone:
			return 0
		case supervisor.UpgradeFailed:
			for _, l := range u.Stderr {
				fmt.Fprintln(stderr, "  |", l)
			}
			return 1
		}
	}
	fmt.Fprintf(stderr, "hotctl upgrade: not over after %v (last seen: %q; last error: %v)\n", wait, last, lastErr)
	return 1
}

// upgradeProgress says where upgrade u stands, in the words of a line.
func upgradeProgress(st supervisor.Status, u *supervisor.UpgradeResult) string {
	switch u.State {
	case supervisor.UpgradePending:
		return fmt.Sprintf("waiting for worker %d to be ready before draining it", st.Worker)
	case supervisor.UpgradeDraining:
		return fmt.Sprintf("worker %d drains", u.OldPID)
	case supervisor.UpgradeStarting:
		return fmt.Sprintf("worker %d starts from %s", u.NewPID, u.To)
	case supervisor.UpgradeDone:
		if st.State != supervisor.StateReady {
			return fmt.Sprintf("done: worker %d was ready; the supervisor's worker is now %s", u.NewPID, st.State)
		}
		return fmt.Sprintf("done: worker %d serves from %s (%v)", st.Worker, st.Binary, u.Finished.Sub(u.Started).Round(time.Millisecond))
	case supervisor.UpgradeFailed:
		back := st.Binary
		if st.Running != "" {
			back = fmt.Sprintf("%s (the copy kept of %s as it was before it was replaced)", st.Running, st.Binary)
		}
		if st.State != supervisor.StateReady {
			return fmt.Sprintf("failed: %s; the previous binary %s is %s", u.Reason, back, st.State)
		}
		return fmt.Sprintf("failed: %s; worker %d serves the previous binary %s again", u.Reason, st.Worker, back)
	}
	return "upgrade state " + u.State
}
