package main

import (
	"fmt"
	"runtime"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/version"
)

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print knode's version and the version of every embedded component",
		Action: func(c *cli.Context) error {
			fmt.Fprintf(c.App.Writer, "knode %s (%s, %s/%s)\n", version.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return printComponents(c)
		},
	}
}
