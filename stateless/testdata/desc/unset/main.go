package main

import "github.com/hothost/hothost/abi"

var Module abi.Module

func main() {}
