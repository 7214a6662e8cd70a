// Package supervisor keeps client connections alive across the death or
// upgrade of the process that serves them.
//
// Two sides live in this one package, like cloudflare/tableflip:
//
//   - The supervisor (New, Serve) owns the client TCP listener and a
//     descriptor of every accepted connection. It starts one worker process
//     at a time, hands it each connection over a SOCK_SEQPACKET socket
//     (SCM_RIGHTS), restarts it with backoff when it dies, and replaces it
//     with a new binary on Upgrade or SIGHUP, falling back to the previous
//     binary when the new one does not come up.
//   - The worker (IsWorker, Attach) receives those connections through a
//     net.Listener, says when it is ready for them, tells the supervisor
//     which ones it is done with, and learns when to drain.
//
// The supervisor must never load plugins, run game code or read a byte a
// client sent: whatever can crash or needs an upgrade belongs in the worker,
// and the supervisor's own death is the one thing that disconnects every
// client. A worker must never outlive its supervisor: it is killed with it
// (Pdeathsig) and exits when the handover socket reaches end of file, so it
// never holds the state segment against the next supervisor's worker.
//
// What a worker had read from a connection but not answered when it died is
// gone with it; keeping requests exactly once is the worker's business (peek
// before consuming, a session table). This package guarantees the
// connection, not the bytes in the dead process's buffers.
package supervisor
