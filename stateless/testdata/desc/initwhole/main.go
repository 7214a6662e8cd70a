package main

import "github.com/hothost/hothost/abi"

var Module = abi.Module{Name: "coin", Version: "1.0.0"}

func init() {
	Module = abi.Module{Name: "shop"}
}

func main() {}
