package main

import (
	"errors"
	"fmt"
	"runtime"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/assets"
	"knode.dev/knode/version"
)

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print knode's version and the version of every embedded component",
		Action: func(c *cli.Context) error {
			fmt.Fprintf(c.App.Writer, "knode %s (%s, %s/%s)\n", version.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			m, err := assets.ReadManifest()
			if errors.Is(err, assets.ErrNoPayload) {
				fmt.Fprintln(c.App.Writer, "no embedded components: built without a payload (build it with `make`)")
				return nil
			}
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "\nCOMPONENT\tVERSION\tFILE")
			for _, p := range m.Programs {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Name, p.Version, p.File)
			}
			for _, img := range m.Images {
				fmt.Fprintf(tw, "image %s\t%s\t\n", img.Name, img.Image.Ref)
			}
			return tw.Flush()
		},
	}
}
