package supervisor

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Status is what the supervisor knows: its worker, the worker's history
// and the connections it holds. Written to Config.StatusFile on every change
// of a worker's lifecycle (and at most once a second for connection counts),
// so it can be read while no worker is up.
type Status struct {
	PID         int       `json:"pid"`                   // the supervisor's
	Listen      string    `json:"listen"`                // the client address
	Binary      string    `json:"binary"`                // the worker binary: what Upgrade("") starts again
	Running     string    `json:"running,omitempty"`     // the file the current worker was started from, when not Binary (a kept copy of the previous binary)
	Worker      int       `json:"worker_pid"`            // 0 while none runs
	State       string    `json:"worker_state"`          // starting, ready, draining, backoff or stopped
	WorkerSince time.Time `json:"worker_since,omitzero"` // when the current worker started
	Starts      int       `json:"starts"`                // workers started
	Restarts    int       `json:"restarts"`              // starts after a worker died unasked or a new one failed
	// Backoff is the wait before the next restart (nanoseconds in JSON):
	// 0 after a worker that ran at least Config.StableAfter, then doubling
	// from MinBackoff to MaxBackoff with each worker that died sooner.
	Backoff     time.Duration  `json:"backoff"`
	NextStart   time.Time      `json:"next_start,omitzero"` // while in backoff
	Conns       int            `json:"conns"`               // client connections held
	Waiting     int            `json:"waiting"`             // of those, not handed to a ready worker yet
	Handovers   uint64         `json:"handovers"`           // connections handed to a worker, in total
	LastExit    *Exit          `json:"last_exit,omitempty"`
	LastUpgrade *UpgradeResult `json:"last_upgrade,omitempty"`
	BadMessages int            `json:"bad_messages"` // invalid handover messages from workers
	LastBad     string         `json:"last_bad,omitempty"`
	Updated     time.Time      `json:"updated"`
}

// Exit is how a worker ended.
type Exit struct {
	PID    int           `json:"pid"`
	Binary string        `json:"binary"`
	At     time.Time     `json:"at"`
	Uptime time.Duration `json:"uptime"` // nanoseconds in JSON
	// Status is exec's ProcessState.String(): "exit status 3", "signal: killed".
	Status string `json:"status"`
	// Asked says the supervisor ended it (drain, or a kill after a timeout);
	// Reason says why.
	Asked  bool     `json:"asked"`
	Reason string   `json:"reason,omitempty"`
	Stderr []string `json:"stderr,omitempty"` // its last lines
}

// UpgradeResult is the outcome of an upgrade, or its progress.
type UpgradeResult struct {
	Seq      uint64    `json:"seq"`     // counts upgrades since the supervisor started
	From     string    `json:"from"`    // binary before
	To       string    `json:"to"`      // binary asked for
	By       string    `json:"by"`      // SIGHUP, the Upgrade call, or a worker (hotctl upgrade)
	State    string    `json:"state"`   // pending, draining, starting, done or failed
	OldPID   int       `json:"old_pid"` // the drained worker
	NewPID   int       `json:"new_pid"` // the worker started from To
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	Reason   string    `json:"reason,omitempty"` // why it failed
	Stderr   []string  `json:"stderr,omitempty"` // the failed worker's last lines
}

// Upgrade states.
const (
	UpgradePending  = "pending"  // waits for the current worker to be ready or gone
	UpgradeDraining = "draining" // the old worker finishes its requests
	UpgradeStarting = "starting" // the new worker starts, not ready yet
	UpgradeDone     = "done"
	UpgradeFailed   = "failed"
)

// Worker states.
const (
	StateStarting = "starting"
	StateReady    = "ready"
	StateDraining = "draining"
	StateBackoff  = "backoff"
	StateStopped  = "stopped"
)

// clone copies st deep enough that the caller may keep it.
func (st Status) clone() Status {
	if st.LastExit != nil {
		e := *st.LastExit
		st.LastExit = &e
	}
	if st.LastUpgrade != nil {
		u := *st.LastUpgrade
		st.LastUpgrade = &u
	}
	return st
}

// writeStatusFile replaces path with st atomically: a reader sees the old
// file or the new one, never a part.
func writeStatusFile(path string, st Status) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("supervisor: status: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("supervisor: status file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("supervisor: status file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("supervisor: status file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("supervisor: status file: %w", err)
	}
	return nil
}

// ReadStatusFile reads a status file written by a supervisor.
func ReadStatusFile(path string) (Status, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Status{}, fmt.Errorf("supervisor: %w", err)
	}
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		return Status{}, fmt.Errorf("supervisor: status file %s: %w", path, err)
	}
	return st, nil
}
