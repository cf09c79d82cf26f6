package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/datadir"
)

func tokenCommand() *cli.Command {
	return &cli.Command{
		Name:        "token",
		Usage:       "print the cluster's join token alone on stdout",
		Description: "For scripts: `knode join <peer> --token $(knode token)`. The token is a secret: it lets a machine join.",
		Flags:       []cli.Flag{dataDirFlag()},
		Action: func(c *cli.Context) error {
			dir := datadir.Dir{Root: c.String("data-dir")}
			b, err := dir.ReadFile(datadir.TokenFile)
			if errors.Is(err, fs.ErrNotExist) || !dir.Initialised() {
				return fmt.Errorf("no cluster in %s: run `knode init` first, or pass the node's --data-dir", dir.Root)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, strings.TrimSpace(string(b)))
			return nil
		},
	}
}
