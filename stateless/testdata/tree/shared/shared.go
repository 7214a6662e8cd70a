// Package shared stands for a package shared with the host (like the
// game's state package): outside the plugin's folder, not plugin code, so
// not checked even though it keeps state and starts a goroutine.
package shared

// Reward is what work pays.
const Reward = 10

var hits int

func init() { go func() { hits++ }() }
