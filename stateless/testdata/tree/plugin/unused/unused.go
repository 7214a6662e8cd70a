// Package unused lives in the plugin's folder but the plugin does not
// import it, so it is not part of the plugin and is not checked.
package unused

var State int

func Start() { go func() {}() }
