// Package state keeps player state that a game can trust on top of a
// shmpool segment: crash-atomic transactions, the player id -> slot index,
// the schema stored with the data and layout migration, and snapshots to
// disk for what shared memory cannot survive (a reboot).
//
// # What it owns
//
// One Store owns one segment (a file under /dev/shm) holding, for every
// player, a record: a 16-byte header (commit sequence, CRC-32C, player id)
// and the game's pointer-free value T. The segment's aux region holds the
// undo journal (one undo record per lane), the transaction journal (the
// undo records of one transaction over several players), the players'
// pending timers and the open-addressing index from id to slot, so one
// file, one owner lock and one mapping carry everything that has to
// survive kill -9.
//
//	Update(id, fn):  lane lock (hash(id) % lanes)  -> copy the committed value
//	                 into the lane's scratch T -> fn(&scratch) (errors and
//	                 panics drop the scratch) -> copy the old record into the
//	                 lane's undo slot -> journal active -> Seq odd -> write
//	                 the record -> Seq even -> journal idle
//
// A crash at any instant leaves either an idle journal (the record is
// whole, old or new) or an active one whose undo copy is restored on the
// next Open. Every acknowledged Update (one that returned nil) is therefore
// present after kill -9, and no reader ever sees half of one: Get, Each,
// Describe and Snapshot copy a record as a sequence-lock read (keep the
// copy only if Seq was even and did not change), so they take no lock,
// never block a commit, and retry only while a writer of the same player
// copies bytes (never while fn runs). The lane mutex is the only lock an
// Update takes.
//
// RunMulti changes up to MaxTxPlayers players in one transaction: it
// takes their lanes in ascending order (so it cannot deadlock), and its
// commit saves every old record in the transaction journal before it
// writes any, so a crash leaves every player old or every player new
// (txjournal.go). A transaction's callback (RunTx) can also schedule and
// cancel timers: messages for a player at a later time, committed with
// its change; RunTimer fires one, removing it in the same commit as its
// effect, so that it fires exactly once (timers.go).
//
// # What it must never do
//
//   - Hold a Go pointer in shared memory (shmpool refuses such a T).
//   - Fire a timer outside RunTimer's transaction, or keep a timer whose
//     player is gone.
//   - Write a record outside the commit protocol above, or acknowledge an
//     update before its commit.
//   - Write to a segment it is migrating from: migrations and snapshot
//     restores build a new segment under a temporary name and rename it
//     over the old one only when it is complete and verified, so kill -9 at
//     any point leaves the old segment usable.
//   - Half-load a snapshot, or guess at a layout change it cannot prove
//     safe: an incompatible change is refused with a diff naming the field
//     unless the game registered a MigrateFunc for it.
//   - Panic on bad input: corrupt segments, snapshots and layouts are
//     errors wrapping the sentinels below.
//
// It knows nothing about the game: T is opaque apart from its layout.
package state
