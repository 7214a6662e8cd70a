// Package main uses every function that ends the process or the goroutine,
// each in another way: called, deferred, taken as a value, promoted.
package main

import (
	"log"
	"os"
	"runtime"
	"syscall"

	"github.com/hothost/hothost/abi"
)

var Module = abi.Module{Name: "coin", Version: "1.0.0", Handlers: map[string]abi.Handler{"work": work}}

type logger struct{ *log.Logger }

func work(c *abi.Call) error {
	if c == nil {
		os.Exit(7) // want `^os.Exit ends the host process: return an error instead$`
	}
	syscall.Exit(1) // want `^syscall.Exit ends the host process: return an error instead$`
	log.Fatal("x")  // want `^log.Fatal ends the host process \(it calls os.Exit after logging\): return an error instead$`
	log.Fatalf("x") // want `^log.Fatalf ends the host process`
	log.Fatalln()   // want `^log.Fatalln ends the host process`
	l := log.New(os.Stderr, "", 0)
	l.Fatal("x")           // want `^\(\*log.Logger\).Fatal ends the host process`
	l.Fatalf("x")          // want `^\(\*log.Logger\).Fatalf ends the host process`
	logger{l}.Fatalln("x") // want `^\(\*log.Logger\).Fatalln ends the host process`
	defer runtime.Goexit() // want `^runtime.Goexit ends the host's goroutine running the call, which then never replies nor commits: return an error instead$`
	exit := os.Exit        // want `^os.Exit ends the host process`
	exit(1)
	log.Print("fine")
	return nil
}

func main() {}
