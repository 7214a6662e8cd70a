//go:build hothost_title

package game

// Player is player.go's Player with a Title: what a game's next release
// adds to its state, to show a host upgrade that migrates the segment's
// layout under live connections (the upgrade storm of make chaos).
type Player struct {
	Coins     int64
	XP        int64
	Level     uint32
	Logins    uint32
	LastLogin int64 // unix seconds
	Name      [NameSize]byte
	Inventory [InventorySize]Stack
	Title     uint32
}
