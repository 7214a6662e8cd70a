package main

import "github.com/hothost/hothost/abi"

var Module = abi.Module{Name: "coin", Version: "1.0.0"}

var Fix = abi.Fix{Name: "coinfix", Version: "1.0.0"}

func main() {}
