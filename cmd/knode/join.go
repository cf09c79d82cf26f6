package main

import (
	"time"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/config"
	"knode.dev/knode/datadir"
	"knode.dev/knode/pki"
)

func joinCommand() *cli.Command {
	return &cli.Command{
		Name:      "join",
		Usage:     "join this machine to a cluster through any live member",
		ArgsUsage: "<peer-host:port>",
		Description: "Contacts the peer, verifies the cluster's CA against the token's pin (refusing on mismatch),\n" +
			"waits for this node's pod subnet and role, then configures the host.\n" +
			"The token comes from `knode init`, or `knode token create` on a master; it admits this machine once\n" +
			"(the cluster then hands over its own gossip key), so it may expire afterwards.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "token", Usage: "the cluster's join token (required, or --token-file)", EnvVars: []string{"KNODE_TOKEN"}},
			&cli.StringFlag{Name: "token-file", Usage: "read the join token from this file's first line (keeps it out of the process list)"},
		}, append(nodeFlags(), hostFlags()...)...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return config.Usagef("join needs exactly one peer address, e.g. `knode join 192.168.1.10:7946 --token T`; got %d arguments", c.NArg())
			}
			peer, err := config.ParseHostPort("peer", c.Args().First(), 7946)
			if err != nil {
				return err
			}
			raw, flag := c.String("token"), "--token"
			if f := c.String("token-file"); f != "" {
				if raw != "" {
					return config.Usagef("give --token or --token-file, not both")
				}
				if raw, err = readTokenFile(f); err != nil {
					return err
				}
				flag = "--token-file " + f
			}
			if raw == "" {
				return config.Usagef("--token is missing: copy it from `knode init`, or make one with `knode token create` on a master")
			}
			tok, err := pki.ParseToken(raw)
			if err != nil {
				return config.Usagef("%s: %v", flag, err)
			}
			node, err := nodeConfig(c)
			if err != nil {
				return err
			}
			chose, err := node.AdvertiseToward(peer.Addr())
			if err != nil {
				return err
			}
			dir := datadir.Dir{Root: node.DataDir}
			if dir.Initialised() {
				return config.Usagef("--data-dir %s already holds a node of a cluster: run `knode reset --data-dir %s` first, or choose another --data-dir", dir.Root, dir.Root)
			}
			if err := config.CheckPortFree("--bind", node.Bind); err != nil {
				return err
			}
			p := bringUpProgress(c, node.DataDir)
			if chose {
				p.Note("gossip advertises %s: this host's address toward %s (--advertise to choose another)", node.Advertise, peer.Addr())
			}
			b := &bringUp{c: c, node: node, token: &tok, tokenFlag: flag, peers: []string{peer.String()}, p: p, timeout: 60 * time.Second}
			return b.run()
		},
	}
}
