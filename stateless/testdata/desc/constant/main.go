package main

import "github.com/hothost/hothost/abi"

const name = "co" + "in"

var Module = abi.Module{
	Name:    name,
	Version: version,
}

func main() {}
