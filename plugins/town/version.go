package main

// version is the module's version: its own file, so that a test can build
// another version of the same source by writing this file alone.
const version = "1.0.0"
