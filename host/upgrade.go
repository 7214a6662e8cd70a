package host

import (
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
)

// ErrNoSupervisor is the answer to an upgrade or supervisor call on a host
// that runs alone (hothost -no-supervisor): it cannot be replaced without
// disconnecting its clients, only restarted.
var ErrNoSupervisor = errors.New("host: not running under a supervisor (hothost -no-supervisor): restart it instead, which disconnects every client")

// registerUpgrade adds the supervisor's part of the admin API:
//
//	POST /v1/upgrade?binary=/abs/path   a new worker from binary ("" or
//	                                    absent: the same path again); the
//	                                    answer holds the supervisor's status,
//	                                    whose last_upgrade.seq to follow
//	GET  /v1/supervisor                 the supervisor's status
//
// The upgrade drains this very worker: the answer goes out first, since
// the admin server finishes the calls it has before it shuts down.
func (h *Host[T, C]) registerUpgrade(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/upgrade", h.jsonCall(func(r *http.Request) (any, error) {
		if h.opts.Handover == nil {
			return nil, ErrNoSupervisor
		}
		bin := r.URL.Query().Get("binary")
		if bin != "" && !filepath.IsAbs(bin) {
			return nil, badRequest(fmt.Errorf("binary %q: want an absolute path (the supervisor's working directory is not the caller's)", bin))
		}
		if err := h.opts.Handover.Upgrade(bin); err != nil {
			return nil, err
		}
		st, err := h.opts.Handover.SupervisorStatus()
		if err != nil {
			return nil, fmt.Errorf("host: upgrade under way, but the supervisor's status: %w", err)
		}
		return map[string]any{"upgrading": true, "supervisor": st}, nil
	}))
	mux.HandleFunc("GET /v1/supervisor", h.jsonCall(func(*http.Request) (any, error) {
		if h.opts.Handover == nil {
			return nil, ErrNoSupervisor
		}
		return h.opts.Handover.SupervisorStatus()
	}))
}
