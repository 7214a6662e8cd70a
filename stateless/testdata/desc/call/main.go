package main

import (
	"os"

	"github.com/hothost/hothost/abi"
)

var Module = abi.Module{Name: "coin", Version: os.Getenv("VERSION")}

func main() {}
