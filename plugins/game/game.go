// Package game holds the example game's shared types: the per-player state
// kept in shared memory and the config tuned live. The host and every plugin
// import it, so it changes only with a host rebuild and restart (a state
// layout change is migrated by the state package at that restart).
//
// game must never hold handler logic or package-level mutable state: logic
// ships in the plugins beside it and is swapped while the host runs.
package game

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"time"
)

// InventorySize is the number of inventory slots per player.
const InventorySize = 16

// NameSize is the fixed size of a player's name in bytes.
const NameSize = 24

// Stack is one inventory slot: Count of item Item (0 means empty).
type Stack struct {
	Item  uint32
	Count uint32
}

// SetName stores s (truncated to NameSize bytes).
func (p *Player) SetName(s string) {
	p.Name = [NameSize]byte{}
	copy(p.Name[:], s)
}

// NameString is the stored name without padding.
func (p *Player) NameString() string { return string(bytes.TrimRight(p.Name[:], "\x00")) }

// Add puts n of item into the inventory, stacking onto an existing slot.
func (p *Player) Add(item, n uint32) error {
	free := -1
	for i := range p.Inventory {
		switch s := &p.Inventory[i]; {
		case s.Count > 0 && s.Item == item:
			s.Count += n
			return nil
		case s.Count == 0 && free < 0:
			free = i
		}
	}
	if free < 0 {
		return errors.New("inventory full")
	}
	p.Inventory[free] = Stack{Item: item, Count: n}
	return nil
}

// Remove takes n of item out of the inventory; false (and no change) if
// there are fewer than n.
func (p *Player) Remove(item, n uint32) bool {
	for i := range p.Inventory {
		if s := &p.Inventory[i]; s.Count >= n && s.Item == item && s.Count > 0 {
			s.Count -= n
			if s.Count == 0 {
				*s = Stack{}
			}
			return true
		}
	}
	return false
}

// Config is the game's live-tuned config, decoded strictly from the host's
// config directory. It lives on the Go heap, so maps are fine here.
type Config struct {
	// WorkReward is the coins one `work` earns (coin v2 doubles it).
	WorkReward int64 `json:"work_reward"`
	// XPPerLevel is the experience needed per level.
	XPPerLevel int64 `json:"xp_per_level"`
	// Items maps an item name to its id and price.
	Items map[string]Item `json:"items"`
	// House is what `build house` costs and how long it takes (module
	// town); the house is an inventory item once built.
	House Building `json:"house"`
}

// Building is something a player builds: paid at the start, added to the
// inventory as item ID once built, Seconds later.
type Building struct {
	ID      uint32  `json:"id"`
	Price   int64   `json:"price"`
	Seconds float64 `json:"seconds"`
}

// maxBuildSeconds bounds a building's time: a week.
const maxBuildSeconds = 7 * 24 * 3600

// Item is a shop item.
type Item struct {
	ID    uint32 `json:"id"`
	Price int64  `json:"price"`
}

// DefaultConfig is the config used when the config directory is empty.
func DefaultConfig() Config {
	return Config{
		WorkReward: 10,
		XPPerLevel: 100,
		Items: map[string]Item{
			"sword":  {ID: 1, Price: 50},
			"shield": {ID: 2, Price: 40},
			"potion": {ID: 3, Price: 5},
		},
		House: Building{ID: 100, Price: 100, Seconds: 30},
	}
}

// Validate refuses configs a handler could not use sensibly.
func (c *Config) Validate() error {
	if c.WorkReward <= 0 || c.WorkReward > 1_000_000 {
		return fmt.Errorf("work_reward %d outside [1, 1000000]", c.WorkReward)
	}
	if c.XPPerLevel <= 0 {
		return fmt.Errorf("xp_per_level %d must be positive", c.XPPerLevel)
	}
	ids := map[uint32]string{}
	names := make([]string, 0, len(c.Items))
	for name := range c.Items {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		it := c.Items[name]
		if it.ID == 0 || it.Price < 0 {
			return fmt.Errorf("item %q: id %d must be non-zero and price %d not negative", name, it.ID, it.Price)
		}
		if other, dup := ids[it.ID]; dup {
			return fmt.Errorf("items %q and %q share id %d", other, name, it.ID)
		}
		ids[it.ID] = name
	}
	switch h := c.House; {
	case h.ID == 0 || h.Price < 0 || !(h.Seconds > 0 && h.Seconds <= maxBuildSeconds):
		return fmt.Errorf("house: id %d must be non-zero, price %d not negative, seconds %v in (0, %d]", h.ID, h.Price, h.Seconds, maxBuildSeconds)
	case ids[h.ID] != "":
		return fmt.Errorf("house and item %q share id %d", ids[h.ID], h.ID)
	}
	return nil
}

// ItemName is the name of the item (or building) with id, or "item#<id>".
func (c *Config) ItemName(id uint32) string {
	if id == c.House.ID {
		return "house"
	}
	for name, it := range c.Items {
		if it.ID == id {
			return name
		}
	}
	return fmt.Sprintf("item#%d", id)
}

// Login is the host's hook on each login: it counts logins and stamps the
// time (a new player starts from the zero value).
func Login(p *Player, now time.Time) {
	p.Logins++
	p.LastLogin = now.Unix()
}
