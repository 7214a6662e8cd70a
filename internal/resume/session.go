// Package resume keeps each client connection's session in shared memory,
// beside the state segment, so that a worker process that takes over a dead
// one's connections (from the supervisor, over SCM_RIGHTS) resumes every one
// of them where it stopped: no request lost, none run twice, none answered
// twice.
//
// It owns the table file (<segment>.sessions) and the byte accounting of
// each connection. It never reads player state and never runs game code:
// whether a request committed is told by the state store's commit counter
// (state.Store.Commits), which the caller hands in.
//
// # How a connection is accounted for
//
// Every byte a worker reads from a connection goes straight into the
// session's input ring in shared memory, and every byte it writes is first
// copied into the session's output slot. The kernel counts what the
// process consumed and wrote on a TCP socket (TCP_INFO bytes_received
// minus SIOCINQ, bytes_acked plus SIOCOUTQ), and those counts survive the
// process. So a new worker knows, for each connection, exactly which bytes
// the dead one read (they are in the ring), which requests it answered
// (InDone), and how much of its last write reached the socket (the rest is
// in the slot, and it writes it).
//
// A request that changes state is the one case the bytes cannot settle: it
// may have committed without being answered. Its reply is kept in a record
// of the session written inside the transaction, marked with the commit
// count the commit makes (Commits+1). After a crash, a record ahead of its
// player's commit count names a transaction that never committed, and
// Validate drops it before anything runs; any other record is a committed
// request's reply, and the new worker sends that instead of running the
// request again. A request that two workers in a row died running is
// answered `err retry` and not run a third time.
//
// Tagged requests (`#17 work`) keep their replies the same way, so a client
// that retries a tag, on the same connection or a new one after a
// reconnect, is answered from the record (FindTag).
package resume
