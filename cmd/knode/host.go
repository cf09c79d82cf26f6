package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/datadir"
	"knode.dev/knode/roles"
)

// plannedHostChanges lists what configuring this host would change.
// TODO(hostprep): wire the hostprep runner's dry run.
func plannedHostChanges(a *roles.Agent) []string {
	return []string{fmt.Sprintf("configure this host for node %s (host configuration is not wired in this build)", a.Name())}
}

// installService installs and starts knode.service.
func installService(c *cli.Context, dataDir string) error {
	return fmt.Errorf("host configuration is not wired in this build: run with --foreground --dry-run")
}

// resetHost reverts the host changes knode made.
func resetHost(c *cli.Context, dir datadir.Dir, p *progress) error { return nil }

// printComponents lists the embedded components.
func printComponents(c *cli.Context) error { return nil }
