package main

import (
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/agent"
	"knode.dev/knode/assets"
	"knode.dev/knode/config"
	"knode.dev/knode/datadir"
	"knode.dev/knode/hostprep"
)

func phaseCommand() *cli.Command {
	return &cli.Command{
		Name:      "phase",
		Usage:     "list the host configuration phases, or run one of them again on a configured node",
		ArgsUsage: "list | <phase>",
		Description: "Each phase is idempotent: running it on a host that is already in place changes nothing.\n" +
			"`knode phase list` names them; `knode phase pod-network --dry-run` shows what it would change.",
		Flags: []cli.Flag{
			dataDirFlag(),
			&cli.BoolFlag{Name: "dry-run", Usage: "list the changes instead of making them"},
			&cli.StringSliceFlag{Name: "ignore-preflight-errors", Usage: "preflight checks to downgrade to warnings, by name, or 'all'"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return config.Usagef("phase needs one argument: `list` or a phase name (see `knode phase list`)")
			}
			name := c.Args().First()
			if name == "list" {
				tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "PHASE\tWHAT IT DOES")
				for _, p := range hostprep.Phases() {
					fmt.Fprintf(tw, "%s\t%s\n", p.Name, p.Description)
				}
				return tw.Flush()
			}
			known := false
			for _, p := range hostprep.Phases() {
				known = known || p.Name == name
			}
			if !known {
				return config.Usagef("unknown phase %q: see `knode phase list`", name)
			}
			dir := datadir.Dir{Root: c.String("data-dir")}
			if !dir.Initialised() {
				return config.Usagef("--data-dir %s holds no node: run `knode init` or `knode join` first", dir.Root)
			}
			if !c.Bool("dry-run") {
				if err := requireRoot("change the host"); err != nil {
					return err
				}
			}
			m, err := assets.ReadManifest()
			if err != nil && !errors.Is(err, assets.ErrNoPayload) {
				return err
			}
			p, imgs := payloadSpec(m, dir.Root)
			spec, err := agent.SavedSpec(dir, &agent.HostOptions{Payload: p, Images: imgs, KnodeBinary: selfPath()})
			if err != nil {
				return err
			}
			h, err := hostprep.NewLinuxHost("/")
			if err != nil {
				return fmt.Errorf("open the host: %w", err)
			}
			r := &hostprep.Runner{Only: []string{name}, DryRun: c.Bool("dry-run"), IgnorePreflightErrors: c.StringSlice("ignore-preflight-errors"), Out: c.App.Writer}
			changes, err := r.Apply(c.Context, &spec, h)
			if err == nil && len(changes) == 0 {
				fmt.Fprintf(c.App.Writer, "phase %s: nothing to change\n", name)
			}
			return err
		},
	}
}
