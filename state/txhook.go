package state

// SetTxCommitHook makes every commit of a transaction that needs the
// transaction journal (several players, or timers: RunMulti, RunTx) call f
// inside the commit: with i before it writes record i (0: the journal is
// prepared and nothing is written yet), and with i equal to the number of
// records after the last one, before the commit point. Calls never
// overlap: f runs under the lock that serializes those commits.
//
// It exists for crash tests of whole processes: a host's test seam kills
// the process from f (host.TxKillEnv), so that a test can prove that a
// cross-player commit killed at each of those instants is rolled back
// whole by the next start. Never set it in production. Set it before any
// store serves (it is read without synchronization); nil removes it.
func SetTxCommitHook(f func(i int)) { testHookTxWrite = f }
