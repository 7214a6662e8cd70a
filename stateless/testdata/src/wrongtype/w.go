package main

import "github.com/hothost/hothost/abi"

var Module = &abi.Module{Name: "coin"} // want `package-level variable Module must have type abi.Module \(the descriptor the host looks up\), not \*github.com/hothost/hothost/abi.Module`
