// Package lib is not a main package: not a plugin, not checked.
package lib

var Counter int

func Start() { go func() {}() }
