package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/agent"
	"knode.dev/knode/config"
	"knode.dev/knode/datadir"
)

func initCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "cluster-name", Value: config.DefaultClusterName, Usage: "the cluster's name (in certificates and kubeconfigs)"},
		&cli.StringFlag{Name: "pod-cidr", Value: config.DefaultPodCIDR, Usage: "range pod addresses come from; each node gets one subnet of it"},
		&cli.IntFlag{Name: "node-cidr-mask", Value: config.DefaultNodeCIDRMask, Usage: "prefix length of each node's pod subnet (24: 254 pods per node)"},
		&cli.StringFlag{Name: "service-cidr", Value: config.DefaultServiceCIDR, Usage: "range of service cluster IPs (its 10th address is cluster DNS)"},
		&cli.IntFlag{Name: "masters", Value: config.DefaultMasters, Usage: "number of masters (etcd members): 1, 3 or 5; the first nodes to join take the seats"},
		&cli.StringFlag{Name: "network", Value: config.DefaultNetwork, Usage: "pod network between nodes: routed, vxlan, or auto (routed when all nodes share a subnet)"},
		&cli.BoolFlag{Name: "taint-masters", Usage: "keep ordinary pods off masters (taint node-role.kubernetes.io/control-plane:NoSchedule); default: masters run pods too"},
		tokenTTLFlag("token-ttl", "how long the printed join token admits machines (0: no expiry); more with `knode token create`"),
	}
	return &cli.Command{
		Name:      "init",
		Usage:     "create a cluster with this machine as its first node and print the join command",
		ArgsUsage: " ",
		Description: "Generates the cluster CA (ECDSA P-256, 10 years), the service-account key pair and a join token,\n" +
			"keeps them under --data-dir (0600 files, 0700 directories), starts the agent and prints the exact\n" +
			"`knode join` command for the other machines. Every flag is checked before anything is written.",
		Flags: append(flags, append(nodeFlags(), hostFlags()...)...),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return config.Usagef("init takes no arguments, got %q (flags start with --)", c.Args().First())
			}
			cl, err := clusterConfig(c)
			if err != nil {
				return err
			}
			node, err := nodeConfig(c)
			if err != nil {
				return err
			}
			if err := config.CheckPortFree("--bind", node.Bind); err != nil {
				return err
			}
			ttl, err := tokenTTL(c, "token-ttl")
			if err != nil {
				return err
			}
			dir := datadir.Dir{Root: node.DataDir}
			p := bringUpProgress(c, node.DataDir)
			p.StepAs("cluster keys", "creating cluster %q: CA, service-account keys, join token", cl.Name)
			gen, err := agent.Create(dir, cl, time.Now())
			if err != nil {
				p.Fail()
				return err
			}
			gen.TokenTTL = ttl
			tok := gen.Token
			p.Note("%s", cl)
			if note := advertiseNote(node); note != "" {
				p.Note("%s", note)
			}
			b := &bringUp{c: c, node: node, create: gen, p: p, timeout: 30 * time.Second}
			b.onReady = func(addr string) {
				w := c.App.Writer
				fmt.Fprintf(w, "knode cluster %q is up.\n\n", cl.Name)
				if cl.Masters > 1 {
					fmt.Fprintf(w, "On the %d machines that are to be masters (they receive the CA key), run:\n\n  knode join %s --token %s\n\n",
						cl.Masters-1, addr, gen.MasterToken)
					fmt.Fprintf(w, "On every other machine (workers), run:\n\n  knode join %s --token %s\n\n", addr, tok)
				} else {
					fmt.Fprintf(w, "On each other machine run:\n\n  knode join %s --token %s\n\n", addr, tok)
				}
				fmt.Fprintf(w, "The tokens admit machines for %s (`knode token create` makes more; --master for masters).\n", ttlText(ttl))
			}
			return b.run()
		},
	}
}
