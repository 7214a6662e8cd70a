//go:build !hothost_title

package game

// Player is one player's state. It lives in shared memory, so it holds no
// pointers, strings or slices (shmpool refuses them by field path).
//
// player_title.go is the same type with one field more, built with
// -tags hothost_title: the second host binary of the upgrade storm (make
// chaos), whose segment layout differs and is migrated at each upgrade.
type Player struct {
	Coins     int64
	XP        int64
	Level     uint32
	Logins    uint32
	LastLogin int64 // unix seconds
	Name      [NameSize]byte
	Inventory [InventorySize]Stack
}
