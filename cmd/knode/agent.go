package main

import (
	"fmt"
	"log/slog"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/agent"
	"knode.dev/knode/config"
	"knode.dev/knode/datadir"
	"knode.dev/knode/hostprep"
)

func agentCommand() *cli.Command {
	return &cli.Command{
		Name:  "agent",
		Usage: "run the agent of an initialised node (what knode.service runs)",
		Description: "Restarts from --data-dir after `knode init` or `knode join`: same name, same pod subnet, rejoining\n" +
			"the peers it knew. Runs until SIGINT/SIGTERM, then leaves the cluster gracefully.",
		Flags: []cli.Flag{dataDirFlag(), &cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"}},
		Action: func(c *cli.Context) error {
			dir := datadir.Dir{Root: c.String("data-dir")}
			if !dir.Initialised() {
				return config.Usagef("--data-dir %s holds no node: run `knode init` or `knode join` first", dir.Root)
			}
			level, err := logLevel(c.String("log-level"))
			if err != nil {
				return err
			}
			o, id, err := restartOptions(dir)
			if err != nil {
				return err
			}
			if id.Host {
				// A configured node: keep its pod network current,
				if o.Host, err = hostOptions(c.Context, dir.Root, c.App.ErrWriter); err != nil {
					return err
				}
				// and serve the node-local apiserver endpoint its kubeconfigs name.
				o.APIEndpoint = hostprep.APIEndpoint()
				// and its image mirror, which containerd asks first,
				o.Images = imagesOptions(dir)
				// and, on a master, save scheduled etcd snapshots.
				o.Snapshots = &agent.SnapshotPolicy{Every: agent.SnapshotEvery, Keep: agent.SnapshotKeep}
			}
			o.Logger = slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))
			o.Serve = true
			ag, err := agent.Start(c.Context, o)
			if err != nil {
				return err
			}
			if err := ag.RestoreHost(c.Context); err != nil {
				o.Logger.Error("restoring the host's network failed; will retry on the next change", "err", err)
			}
			select {
			case <-c.Context.Done():
				return ag.Stop(true)
			case <-ag.Done():
				return ag.Err() // non-nil: knode.service starts it again (its address changed)
			}
		},
	}
}

// restartOptions rebuilds an agent's options from its data directory: its
// identity, token, and every peer it knew (any live one is enough to rejoin).
func restartOptions(dir datadir.Dir) (agent.Options, datadir.Identity, error) {
	var id datadir.Identity
	if err := dir.ReadJSON(datadir.NodeFile, &id); err != nil {
		return agent.Options{}, id, fmt.Errorf("read node identity: %w", err)
	}
	peers := append(append([]string{}, id.Peers...), agent.SavedPeers(dir, id.Name)...)
	return agent.Options{
		Dir: dir, Peers: peers, Rejoin: true,
		Node: config.Node{Name: id.Name, Bind: id.Bind, Advertise: id.Advertise, DataDir: dir.Root},
	}, id, nil
}
