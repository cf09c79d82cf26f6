// Command knode-launcher is the release's bin/knode: it carries the payload appended to
// it, stages it on first use and execs the staged knode program (see package launch).
// `make` builds it and appends the payload; on its own it only says that it has none.
package main

import (
	"context"
	"fmt"
	"os"

	"knode.dev/knode/launch"
)

func main() {
	self, err := os.Executable()
	if err == nil {
		err = launch.Run(context.Background(), launch.Env{
			Self: self, Args: os.Args, Environ: os.Environ(), Euid: os.Geteuid(), Stderr: os.Stderr,
		})
	}
	fmt.Fprintf(os.Stderr, "knode: error: %v\n", err)
	os.Exit(1)
}
