// nodesc exports no Module.
package main

// Describe is exported, but it is not the descriptor.
func Describe() string { return "coin " + version }
