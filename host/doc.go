// Package host is the hothost runtime: the client gateway (TCP and
// WebSocket) with ticket logins, per-player ordered dispatch onto lanes, the
// transaction around every handler call, pushes, the hang watchdog, crash
// attribution at start, repair runs, live config reload, the admin API with
// its audit log and dashboard, metrics and the process lifecycle (start,
// periodic snapshots, drain, clean shutdown).
//
// A request travels: frame -> session (the player id of a verified login
// ticket) -> the player's lane, run inline on the connection's goroutine
// under the lane's lock (players hashed onto lanes, so one player's requests
// run one at a time, in arrival order) -> one atomic load of the current
// handler table -> a state transaction running the handler on private
// copies (the caller's, and those of the players the module's Others names)
// under the handler deadline -> commit -> reply -> the pushes the handler
// queued. The reply leaves only after the commit, so an acknowledged update
// survives kill -9 of the host.
//
// host is generic over the game's state type T and config type C and must
// never know what they mean: the game supplies them, its plugins and a few
// hooks (Game). It never unloads a plugin, never holds player state outside
// the state store, and never waits for a fenced handler to return.
package host
