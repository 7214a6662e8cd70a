// wrongtype exports a Module that is not an abi.Module (hhvet refuses it too).
package main

var Module = "coin " + version
