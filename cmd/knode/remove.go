package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/agent"
	"knode.dev/knode/config"
	"knode.dev/knode/datadir"
	"knode.dev/knode/hostprep"
	"knode.dev/knode/internal/poll"
	"knode.dev/knode/kubeapi"
)

func removeCommand() *cli.Command {
	return &cli.Command{
		Name:      "remove",
		Usage:     "take a dead or gone node out of the cluster (run on a master)",
		ArgsUsage: "<node>",
		Description: "For a node that cannot run `knode reset` itself. On a master: removes the node's etcd member\n" +
			"(masters), releases its pod subnet and master seat by a decision signed with the decision key,\n" +
			"and waits until its Node object is deleted. Refuses, unless --force, a node that still answers\n" +
			"gossip (run `knode reset` on it instead) and an etcd removal that would lose quorum.\n" +
			"--json prints {\"node\":...,\"etcdMember\":...,\"released\":true,\"nodeDeleted\":...}.",
		Flags: []cli.Flag{dataDirFlag(), jsonFlag(),
			&cli.BoolFlag{Name: "force", Usage: "remove even a node that is alive, or an etcd member whose removal loses quorum"}},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return config.Usagef("knode remove takes one node name (see `knode status`), got %d arguments", c.NArg())
			}
			name := c.Args().First()
			ctx, cancel := context.WithTimeout(c.Context, 40*time.Second)
			defer cancel()
			res, err := agent.RequestRemoveNode(ctx, datadir.Dir{Root: c.String("data-dir")}.Socket(), name, c.Bool("force"))
			if err != nil {
				return fmt.Errorf("remove %s: %w", name, err)
			}
			deleted, derr := waitNodeDeleted(ctx, name)
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					agent.RemoveResult
					NodeDeleted bool `json:"nodeDeleted"`
				}{res, deleted})
			}
			w := c.App.Writer
			if res.EtcdMember != "" {
				fmt.Fprintf(w, "removed etcd member %s (%s)\n", res.EtcdMember, name)
			}
			fmt.Fprintf(w, "released the pod subnet and seat of %s\n", name)
			if deleted {
				fmt.Fprintf(w, "deleted Node %s\n", name)
			} else {
				fmt.Fprintf(w, "Node %s not deleted yet (%v): the allocator deletes it once the apiserver answers\n", name, derr)
			}
			return nil
		},
	}
}

// waitNodeDeleted waits until the Node object name is gone, through the
// admin kubeconfig (the allocator's chores delete it).
func waitNodeDeleted(ctx context.Context, name string) (bool, error) {
	api, err := kubeapi.FromKubeconfig(hostprep.AdminKubeconfig)
	if err != nil {
		return false, err
	}
	defer api.Close()
	var last error
	if poll.Until(ctx, 500*time.Millisecond, func() (bool, error) {
		_, last = api.GetNode(ctx, name)
		if kubeapi.IsNotFound(last) {
			return true, nil
		}
		if last == nil {
			last = fmt.Errorf("the Node object %s still exists", name)
		}
		return false, nil
	}) != nil {
		return false, last
	}
	return true, nil
}
