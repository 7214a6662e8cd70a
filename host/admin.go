package host

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hothost/hothost/loader"
	"github.com/hothost/hothost/state"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"
)

type connKey struct{}

// adminHandler serves the admin API. Every call, refused ones included, is
// written to the audit log before the response is complete.
func (h *Host[T, C]) adminHandler(requireToken bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", h.jsonCall(func(*http.Request) (any, error) { return h.Status(), nil }))
	mux.HandleFunc("GET /v1/versions", h.jsonCall(func(*http.Request) (any, error) { return h.versionStatuses(), nil }))
	mux.HandleFunc("POST /v1/activate", h.jsonCall(func(r *http.Request) (any, error) {
		return h.versionOp("activated", r, h.loader.Activate)
	}))
	mux.HandleFunc("POST /v1/pin", h.jsonCall(func(r *http.Request) (any, error) { return h.versionOp("pinned", r, h.loader.Pin) }))
	mux.HandleFunc("POST /v1/rollback", h.jsonCall(func(r *http.Request) (any, error) {
		m, err := need(r, "module")
		if err != nil {
			return nil, err
		}
		if err := h.loader.Rollback(m); err != nil {
			return nil, err
		}
		return map[string]any{"rolled_back": m, "active": h.activeOf(m)}, nil
	}))
	mux.HandleFunc("POST /v1/unpin", h.jsonCall(func(r *http.Request) (any, error) {
		m, err := need(r, "module")
		if err != nil {
			return nil, err
		}
		return map[string]any{"unpinned": m}, h.loader.Unpin(m)
	}))
	mux.HandleFunc("POST /v1/reload", h.jsonCall(func(r *http.Request) (any, error) { return h.Reload(r.Context()) }))
	mux.HandleFunc("GET /v1/player", h.jsonCall(func(r *http.Request) (any, error) {
		s, err := need(r, "id")
		if err != nil {
			return nil, err
		}
		id, err := parsePlayerID(s)
		if err != nil {
			return nil, badRequest(err)
		}
		v, err := h.store.Describe(id)
		if err != nil {
			return nil, err
		}
		return map[string]any{"id": id, "state": v}, nil
	}))
	mux.HandleFunc("GET /v1/player/timers", h.jsonCall(h.playerTimers))
	mux.HandleFunc("GET /v1/player/export", h.jsonCall(h.exportPlayer))
	mux.HandleFunc("POST /v1/player/import", h.jsonCall(h.importPlayer))
	mux.HandleFunc("GET /v1/usage", h.jsonCall(h.usageReport))
	mux.Handle("GET /dashboard/", dashboardHandler())
	mux.HandleFunc("POST /v1/snapshot", h.jsonCall(func(*http.Request) (any, error) { return h.snapshot() }))
	mux.HandleFunc("POST /v1/drain", h.jsonCall(func(*http.Request) (any, error) {
		h.draining.Store(true)
		return map[string]any{"draining": true}, nil
	}))
	mux.HandleFunc("POST /v1/shutdown", h.jsonCall(func(*http.Request) (any, error) {
		if h.opts.Handover != nil {
			// Under a supervisor the whole server stops: the supervisor
			// drains this worker rather than start another.
			if err := h.opts.Handover.Shutdown(); err != nil {
				return nil, fmt.Errorf("host: shutdown: %w", err)
			}
			return map[string]any{"shutting_down": true, "supervisor": true}, nil
		}
		h.requestStop("admin shutdown")
		return map[string]any{"shutting_down": true}, nil
	}))
	mux.Handle("GET /metrics", promhttp.HandlerFor(h.metrics.reg, promhttp.HandlerOpts{}))
	h.registerFix(mux)
	h.registerUpgrade(mux)

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		who := h.who(r)
		if requireToken && !validToken(r, h.opts.AdminToken) {
			who += " (no valid token)"
			http.Error(rec, "err auth: a valid bearer token is required", http.StatusUnauthorized)
			rec.result = "refused: no valid token"
		} else {
			mux.ServeHTTP(rec, r)
		}
		if err := h.audit.write(auditEntry{Time: time.Now().UTC(), Who: who, Method: r.Method, What: r.URL.RequestURI(),
			Status: rec.status, Result: rec.result}); err != nil {
			h.log.Error("audit log write failed", "err", err)
		}
	})
}

func validToken(r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

// who names the caller: the peer's uid and pid on the Unix socket (from
// SO_PEERCRED, which the caller cannot forge), the remote address on TCP.
func (h *Host[T, C]) who(r *http.Request) string {
	conn, _ := r.Context().Value(connKey{}).(net.Conn)
	if uc, ok := conn.(*net.UnixConn); ok {
		raw, err := uc.SyscallConn()
		if err == nil {
			var cred *unix.Ucred
			raw.Control(func(fd uintptr) { cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
			if err == nil {
				return fmt.Sprintf("unix uid=%d pid=%d", cred.Uid, cred.Pid)
			}
		}
		return "unix (peer unknown)"
	}
	return "tcp " + r.RemoteAddr
}

type httpError struct {
	status int
	err    error
}

func (e *httpError) Error() string { return e.err.Error() }
func (e *httpError) Unwrap() error { return e.err }

func badRequest(err error) error { return &httpError{http.StatusBadRequest, err} }

func need(r *http.Request, key string) (string, error) {
	v := r.URL.Query().Get(key)
	if v == "" {
		return "", badRequest(fmt.Errorf("missing query parameter %q", key))
	}
	return v, nil
}

func (h *Host[T, C]) versionOp(done string, r *http.Request, op func(module, version string) error) (any, error) {
	m, err := need(r, "module")
	if err != nil {
		return nil, err
	}
	v, err := need(r, "version")
	if err != nil {
		return nil, err
	}
	if err := op(m, v); err != nil {
		return nil, err
	}
	return map[string]any{done: m + " " + v, "active": h.activeOf(m)}, nil
}

// jsonCall adapts fn to an HTTP handler answering JSON; errors become
// {"error": ...} with 400 for bad requests and 409 for refused operations.
func (h *Host[T, C]) jsonCall(fn func(*http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := fn(r)
		w.Header().Set("Content-Type", "application/json")
		rec, _ := w.(*statusRecorder)
		if err != nil {
			status := http.StatusConflict
			var he *httpError
			switch {
			case errors.As(err, &he):
				status = he.status
			case errors.Is(err, state.ErrNotFound), errors.Is(err, loader.ErrNotLoaded):
				status = http.StatusNotFound
			}
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			if rec != nil {
				rec.result = "error: " + err.Error()
			}
			return
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(v)
		if rec != nil {
			rec.result = "ok"
		}
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	result string
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (h *Host[T, C]) newAdminServer(requireToken bool) *http.Server {
	return &http.Server{
		Handler:           h.adminHandler(requireToken),
		ReadHeaderTimeout: 5 * time.Second,
		ConnContext:       func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) },
	}
}
