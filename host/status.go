package host

import (
	"os"
	"time"

	"github.com/hothost/hothost/internal/crashmark"
	"github.com/hothost/hothost/loader"
	"github.com/hothost/hothost/state"
)

// Status is what GET /v1/status answers.
type Status struct {
	PID         int               `json:"pid"`
	Started     time.Time         `json:"started"`
	Uptime      string            `json:"uptime"`
	Draining    bool              `json:"draining"`
	Clients     string            `json:"clients"`              // the client listener's address
	AdminAddr   string            `json:"admin_addr,omitempty"` // the admin TCP listener's address, if any
	State       StateStatus       `json:"state"`
	Lanes       int               `json:"lanes"`
	Connections int               `json:"connections"`
	Modules     map[string]string `json:"modules"` // module -> active version
	TableGen    uint64            `json:"table_generation"`
	Config      ConfigStatus      `json:"config"`
	Snapshot    SnapshotStatus    `json:"snapshot"`
	// HandlerTimeout is the watchdog's deadline per request.
	HandlerTimeout string `json:"handler_timeout"`
	// Running lists the handler calls in progress now, by lane (what a
	// crash at this instant would be attributed to).
	Running []crashmark.Mark `json:"running,omitempty"`
	// Stuck lists fenced requests whose handler still runs (each keeps a
	// goroutine and maybe a CPU until it returns; a restart reclaims them).
	Stuck []StuckCall `json:"stuck,omitempty"`
	// LastCrash is the last unclean exit found at a start, and what it was
	// attributed to.
	LastCrash *CrashReport `json:"last_crash,omitempty"`
	// HistoryError says why the version history file could not be used at
	// start (it was set aside and a new one begun), if so.
	HistoryError string `json:"history_error,omitempty"`
}

// StateStatus says how the state was opened at start and what it holds.
type StateStatus struct {
	Opened   string `json:"opened"` // attached, recovered, migrated, restored or created
	Report   string `json:"report"` // the open report, with figures
	Players  int    `json:"players"`
	Capacity int    `json:"capacity"`
	Segment  string `json:"segment"`
	// Scrub is the background check of every record's checksum (after a
	// kill -9 it is what checks the records: recovery trusts the journal
	// and the index), and what it repaired.
	Scrub state.ScrubStatus `json:"scrub"`
}

// ConfigStatus is the live game config's version and the last refusal.
type ConfigStatus struct {
	Version  int       `json:"version"`
	Hash     string    `json:"hash"`
	Files    []string  `json:"files"`
	LoadedAt time.Time `json:"loaded_at"`
	Error    string    `json:"error,omitempty"`
}

// SnapshotStatus is the last snapshot; its age is the most a reboot loses.
type SnapshotStatus struct {
	Every   string    `json:"every"`
	Last    time.Time `json:"last,omitzero"`
	Path    string    `json:"path,omitempty"`
	Players int       `json:"players,omitempty"`
	Error   string    `json:"error,omitempty"`
}

// VersionStatus is one line of GET /v1/versions.
type VersionStatus struct {
	Module      string    `json:"module"`
	Version     string    `json:"version"`
	File        string    `json:"file"`
	State       string    `json:"state"`
	Reason      string    `json:"reason,omitempty"`
	Pinned      bool      `json:"pinned,omitempty"`
	LoadedAt    time.Time `json:"loaded_at,omitzero"`
	ActivatedAt time.Time `json:"activated_at,omitzero"`
	Calls       int64     `json:"calls"`
	Errors      int64     `json:"errors"`
	Panics      int64     `json:"panics"`
	InFlight    int64     `json:"in_flight"`
	// From the durable history (across restarts).
	Changed         time.Time `json:"changed_at,omitzero"`
	Crashes         int       `json:"crashes,omitempty"`
	LastCrash       time.Time `json:"last_crash_at,omitzero"`
	Restored        bool      `json:"restored,omitempty"`
	Loaded          bool      `json:"loaded"`
	SHA256          string    `json:"sha256,omitempty"`
	PluginPath      string    `json:"plugin_path,omitempty"`
	PreflightReused bool      `json:"preflight_reused,omitempty"`
}

// Status reports the host's state.
func (h *Host[T, C]) Status() Status {
	cur := h.config.current()
	t := h.loader.Current()
	h.connMu.Lock()
	conns := len(h.conns)
	h.connMu.Unlock()
	stuck := h.Stuck()
	info, at, serr := h.store.LastSnapshot()
	snap := SnapshotStatus{Every: h.opts.SnapshotEvery.String(), Last: at, Path: info.Path, Players: info.Players}
	if serr != nil {
		snap.Error = serr.Error()
	}
	st := Status{
		PID: os.Getpid(), Started: h.started, Uptime: time.Since(h.started).Round(time.Second).String(),
		Draining: h.draining.Load(), Clients: h.clientAddr.String(), Lanes: len(h.lanes), Connections: conns,
		Modules: t.Modules(), TableGen: t.Gen(),
		State: StateStatus{Opened: h.opened.How.String(), Report: h.opened.String(), Players: h.store.Len(),
			Capacity: h.store.Cap(), Segment: h.store.Path(), Scrub: h.store.Scrub()},
		Config:   ConfigStatus{Version: cur.Version, Hash: cur.Hash, Files: cur.Files, LoadedAt: cur.LoadedAt},
		Snapshot: snap, HandlerTimeout: h.opts.HandlerTimeout.String(), Stuck: stuck,
		Running: h.marks.Active(), LastCrash: h.lastCrash,
	}
	if err := h.config.lastError(); err != nil {
		st.Config.Error = err.Error()
	}
	if err := h.loader.HistoryError(); err != nil {
		st.HistoryError = err.Error()
	}
	if h.adminAddr != nil {
		st.AdminAddr = h.adminAddr.String()
	}
	return st
}

// versionStatuses is the loader's history with this host's request counts
// (per-lane counters summed now) and requests in flight.
func (h *Host[T, C]) versionStatuses() []VersionStatus {
	vs := h.loader.Versions()
	use := h.usage()
	inflight := map[int]int64{}
	h.connMu.Lock()
	for s := range h.conns {
		if b := s.busy.Load(); b != 0 {
			inflight[int(b&0xffff)-1]++
		}
	}
	h.connMu.Unlock()
	out := make([]VersionStatus, 0, len(vs))
	for _, v := range vs {
		st := VersionStatus{Module: v.Module, Version: v.Version, File: v.File, State: string(v.State),
			Reason: v.Reason, Pinned: v.Pinned, LoadedAt: v.LoadedAt, ActivatedAt: v.ActivatedAt,
			Calls: v.Calls, Errors: v.Errors, Panics: v.Panics, InFlight: v.InFlight,
			Changed: v.Changed, Crashes: v.Crashes, LastCrash: v.LastCrash, Restored: v.Restored, Loaded: v.Loaded,
			SHA256: v.SHA256, PluginPath: v.PluginPath, PreflightReused: v.PreflightReused}
		if serial, ok := h.loader.SerialOf(v.Module, v.Version); ok && v.State != loader.StateRejected {
			if u := use[serial]; u != nil {
				st.Calls, st.Errors, st.Panics = st.Calls+u.calls, st.Errors+u.errs, st.Panics+u.panics
			}
			st.InFlight += inflight[serial]
		}
		out = append(out, st)
	}
	return out
}
