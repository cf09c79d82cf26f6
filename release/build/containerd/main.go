// Command containerd is knode's build of containerd and its ctr client as one multi-call
// binary (they share most of their code). It runs ctr when its argv[0] base name is ctr or its
// first argument is ctr, and the containerd daemon otherwise. containerd-shim-runc-v2 is built
// separately from upstream's own main: the shim initialises every plugin registered in its
// process, so it must not share a binary with the daemon's plugins.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	_ "github.com/containerd/containerd/v2/cmd/containerd/builtins" // the daemon's plugins
	"github.com/containerd/containerd/v2/cmd/containerd/command"
	ctr "github.com/containerd/containerd/v2/cmd/ctr/app"
)

func main() {
	ctx := context.Background()
	name, args := "containerd", os.Args
	switch {
	case filepath.Base(os.Args[0]) == "ctr":
		name = "ctr"
	case len(os.Args) > 1 && (os.Args[1] == "ctr" || os.Args[1] == "containerd"):
		name, args = os.Args[1], os.Args[1:]
	}
	var err error
	if name == "ctr" {
		err = ctr.New().Run(ctx, args)
	} else {
		err = command.App().Run(ctx, args)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}
