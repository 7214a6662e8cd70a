package main

import "github.com/hothost/hothost/abi"

var Module = abi.Module{"coin", "2.0.0", ">= 1.0", nil, nil, nil}

func main() {}
