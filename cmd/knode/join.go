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
			"The token comes from `knode init` or `knode token` on any member.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "token", Usage: "the cluster's join token (required)", EnvVars: []string{"KNODE_TOKEN"}},
		}, append(nodeFlags(), hostFlags()...)...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return config.Usagef("join needs exactly one peer address, e.g. `knode join 192.168.1.10:7946 --token T`; got %d arguments", c.NArg())
			}
			peer, err := config.ParseHostPort("peer", c.Args().First(), 7946)
			if err != nil {
				return err
			}
			if c.String("token") == "" {
				return config.Usagef("--token is missing: copy it from `knode init` or `knode token` on a member")
			}
			tok, err := pki.ParseToken(c.String("token"))
			if err != nil {
				return config.Usagef("--token: %v", err)
			}
			node, err := nodeConfig(c)
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
			p := newProgress(c.App.ErrWriter)
			p.table = true
			b := &bringUp{c: c, node: node, token: tok, peers: []string{peer.String()}, p: p, timeout: 60 * time.Second}
			return b.run()
		},
	}
}
