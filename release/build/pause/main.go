// Command pause is the process that holds a pod sandbox's namespaces: PID 1 of the sandbox. It
// sleeps until SIGINT or SIGTERM and reaps any child that is reparented to it. Built static,
// it is the only file of knode's pause image.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is set by the release build (-X main.version=...).
var version = "dev"

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-v" || os.Args[1] == "--version") {
		fmt.Printf("pause %s (knode)\n", version)
		return
	}
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			return
		}
		reap()
	}
}

// reap collects every exited child without blocking.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
