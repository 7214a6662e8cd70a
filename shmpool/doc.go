// Package shmpool is a pool of fixed-size, pointer-free values of one Go type
// T kept in a single POSIX shared-memory segment (a file under /dev/shm), so
// that the values outlive the process that wrote them.
//
// A Pool owns one segment: it creates or attaches it, holds an exclusive
// flock on it for its whole lifetime (one owner at a time; the kernel drops
// the lock when the owner dies, even by kill -9), validates the segment's
// header in a fixed order on attach (size, magic, checksum, version, layout)
// and hands out slots addressed by generation-checked Handles.
//
// The segment layout is:
//
//	[0, 4096)            header: a frozen prefix (magic, version, header size,
//	                     checksum) then the rest of the header, then the
//	                     owner words (clean flag, owner pid, attach count)
//	[4096, ...)          the stored Layout of T (JSON), page aligned
//	[...]                aux: raw bytes owned by the layer above (page aligned)
//	[...]                slot states: one uint64 per slot (generation | state)
//	[...]                slot values: T at index*SlotSize, 8-byte aligned
//
// Slot states sit apart from the values so that attaching a pool touches only
// 8 bytes per slot: the free structure is rebuilt from them on every attach
// (a persisted free list is never trusted).
//
// shmpool must never hold a Go pointer in shared memory (Open refuses any T
// that contains one), never repair a segment silently (a segment it cannot
// validate is an error naming the cause), and never know what T means: crash
// atomicity of an update, ids and snapshots belong to the state package.
package shmpool
