// Package host is the hothost runtime: the client gateway, per-player
// ordered dispatch onto lanes, the transaction around every handler call,
// live config reload, the admin API with its audit log, metrics and the
// process lifecycle (start, periodic snapshots, drain, clean shutdown).
//
// A request travels: TCP frame -> session (player id) -> the player's lane
// (one goroutine per lane; players hashed onto lanes, so one player's
// requests run one at a time, in arrival order) -> one atomic load of the
// current handler table -> a state transaction running the handler on a
// private copy -> commit -> reply. The reply leaves only after the commit, so
// an acknowledged update survives kill -9 of the host.
//
// host is generic over the game's state type T and config type C and must
// never know what they mean: the game supplies them, its plugins and a few
// hooks (Game). It never unloads a plugin and never holds player state
// outside the state store.
package host
