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
		Description: "knode-shutdown.service runs this as the system shuts down, after the kubelet stopped and\n" +
			"before containerd and the pods stop: the scheduler and controller-manager hand over their\n" +
			"leases, and the apiserver leaves the kubernetes Service, through an etcd that still answers.\n" +
			"On a worker it stops nothing.",
		Action: func(c *cli.Context) error {
			// Within the unit's TimeoutStopSec (60 s): two waves of at most
			// the CRI stop grace each, and the listing.
			ctx, cancel := context.WithTimeout(c.Context, 50*time.Second)
			defer cancel()
			start := time.Now()
			n, err := hostprep.StopControlPlane(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "stopped %d control plane containers in %s\n", n, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
}
