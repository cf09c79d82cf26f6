// Command hello is the static binary the smoke test copies into a node and runs: it proves
// that a binary built on the host runs in the node image unchanged, as knode must.
package main

import (
	"fmt"
	"os"
	"runtime"
)

func main() {
	h, _ := os.Hostname()
	fmt.Printf("hello from %s (%s/%s, pid %d)\n", h, runtime.GOOS, runtime.GOARCH, os.Getpid())
}
