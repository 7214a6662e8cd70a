package host

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/hothost/hothost/state"
)

// TxKillEnv is a test seam: set to "N:P", it makes the host kill itself
// with SIGKILL inside the Nth commit through the transaction journal (a
// give or a trade between two players; one that schedules timers counts
// too) that reaches point P: before
// it writes record P (0: the transaction journal is prepared, nothing is
// written; 1: the first player is written, the second not), or, with P
// the number of records (2 for two players), with every record written and
// the commit point not yet passed. The next start must find every player
// of that transaction as before it. Never set it in production.
const TxKillEnv = "HOTHOST_TEST_TX_KILL"

// armTxKill reads TxKillEnv and, when it is set, arms the kill in the
// state package's commit hook, and says so loudly. It must run before the
// state serves.
func armTxKill(log *slog.Logger) error {
	s := os.Getenv(TxKillEnv)
	if s == "" {
		return nil
	}
	n, p, ok := strings.Cut(s, ":")
	commit, err1 := strconv.ParseInt(n, 10, 64)
	point, err2 := strconv.Atoi(p)
	if !ok || err1 != nil || err2 != nil || commit < 1 || point < 0 || point > state.MaxTxPlayers {
		return fmt.Errorf("host: %s=%q: want N:P, the Nth commit of several players (N >= 1) at point P (0 to %d)",
			TxKillEnv, s, state.MaxTxPlayers)
	}
	log.Warn("test seam armed: this host kills itself inside a cross-player commit", "env", TxKillEnv, "commit", commit, "point", point)
	// A commit passes point P at most once: the Nth pass is in the Nth
	// commit that reaches it.
	k := &killSeam{point: "tx", n: commit}
	state.SetTxCommitHook(func(i int) {
		if i == point {
			k.at("tx")
		}
	})
	return nil
}
