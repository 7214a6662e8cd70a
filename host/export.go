package host

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/hothost/hothost/state"
)

// maxImportBytes bounds an import request's body: a player document is a
// few KiB, and the body is read before it can be checked.
const maxImportBytes = 8 << 20

// exportPlayer answers GET /v1/player/export?id=N: the player as a
// state.PlayerDoc, which POST /v1/player/import (here or on another host,
// of this or a later layout) takes back.
func (h *Host[T, C]) exportPlayer(r *http.Request) (any, error) {
	id, err := playerParam(r, true)
	if err != nil {
		return nil, err
	}
	return h.store.Export(id)
}

// importPlayer answers POST /v1/player/import[?id=N][&replace=1] with a
// state.PlayerDoc as the body: the player is written under id (the
// document's own by default) through the store's transaction, so it is
// crash-atomic and ordered with the player's requests. A refused document
// (400: malformed or inconsistent; 409: incompatible layout, or the player
// exists and replace is not set) changes nothing.
func (h *Host[T, C]) importPlayer(r *http.Request) (any, error) {
	id, err := playerParam(r, false)
	if err != nil {
		return nil, err
	}
	replace := false
	if s := r.URL.Query().Get("replace"); s != "" {
		if replace, err = strconv.ParseBool(s); err != nil {
			return nil, badRequest(fmt.Errorf("replace=%q: want 1 or 0", s))
		}
	}
	doc, err := state.DecodePlayerDoc(http.MaxBytesReader(nil, r.Body, maxImportBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, &httpError{http.StatusRequestEntityTooLarge, fmt.Errorf("import: a player document is at most %d bytes", tooLarge.Limit)}
	}
	if err != nil {
		return nil, badRequest(fmt.Errorf("import: %w", err))
	}
	rep, err := h.store.Import(doc, id, replace)
	if errors.Is(err, state.ErrBadDocument) {
		return nil, badRequest(fmt.Errorf("import: %w", err))
	}
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	h.log.Info("admin: player imported", "player", rep.ID, "created", rep.Created, "from_player", doc.ID,
		"changes", len(rep.Changes), "migrate_func", rep.MigrateFunc)
	return rep, nil
}

// playerParam reads ?id=, which may be left out (0) unless required.
func playerParam(r *http.Request, required bool) (uint64, error) {
	s := r.URL.Query().Get("id")
	if s == "" && !required {
		return 0, nil
	}
	if s == "" {
		return 0, badRequest(errors.New(`missing query parameter "id"`))
	}
	id, err := parsePlayerID(s)
	if err != nil {
		return 0, badRequest(err)
	}
	return id, nil
}
