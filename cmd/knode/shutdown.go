package main

import (
	"context"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/hostprep"
)

// shutdownHookCommand is what knode-shutdown.service runs when the system
// shuts down (hidden: nothing else should call it).
func shutdownHookCommand() *cli.Command {
	return &cli.Command{
		Name:   "shutdown-hook",
		Hidden: true,
		Usage:  "stop this node's control plane in order: scheduler and controller-manager, then the apiserver, while etcd runs",
		Description: "knode-shutdown.service runs this as the system shuts down: once the kubelet has stopped, and\n" +
			"before knode's agent, containerd and the pods stop, the scheduler and controller-manager hand\n" +
			"over their leases and the apiserver leaves the kubernetes Service, through an etcd that still\n" +
			"answers. With the kubelet still running it stops nothing. On a worker it stops nothing.",
		Action: func(c *cli.Context) error {
			// Within the unit's TimeoutStopSec (60 s): the wait for the
			// kubelet, then two waves of at most the CRI stop grace each.
			ctx, cancel := context.WithTimeout(c.Context, 55*time.Second)
			defer cancel()
			h, err := hostprep.NewLinuxHost("/")
			if err != nil {
				return err
			}
			start := time.Now()
			n, err := hostprep.ShutdownControlPlane(ctx, h, 20*time.Second)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "stopped %d control plane containers in %s\n", n, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
}
