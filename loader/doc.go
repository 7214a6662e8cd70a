// Package loader finds, checks, opens and activates versions of hothost's
// plugins, and owns the versioned table the host calls handlers through.
//
// What it owns: the plugin directory's poller, the checks a file must pass
// before any of its code runs (complete, name and version, sha256 and
// optional ed25519 signature, Go build settings against the host's own), the
// preflight child that opens a new plugin first so that an init which
// panics, hangs or calls os.Exit costs a child process and not the host, the
// plugin.Open in the host, the table of handlers (one atomic pointer, swapped
// whole), probation with automatic rollback, crash quarantine (RecordCrash,
// MarkBad), and the history of every version and decision, kept across
// restarts (Options.HistoryFile), for the admin API.
//
// What it must never do: unload a plugin (Go cannot; old versions stay
// loaded, which is what makes rollback a single atomic store); open a path
// twice (Go would silently return the plugin it opened first); open a file
// that failed a check; open, after a restart, a version it marked bad;
// serve a version before the history file records it; block or fail a request
// during a swap (a call runs entirely on the table it loaded); know anything
// about a game (messages are strings, state is the handler's business);
// panic on bad input.
//
// The host's main must start with
//
//	if loader.IsPreflight() {
//		loader.PreflightMain() // never returns
//	}
//
// because the default preflight re-executes the host binary with the
// environment variable HOTHOST_PREFLIGHT set to the plugin's path (and the
// argument -hothost.preflight, so a binary that forgets this fails fast on
// an unknown flag instead of starting a second server). Tests do the same in
// TestMain.
package loader
