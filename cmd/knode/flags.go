package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/config"
)

func dataDirFlag() cli.Flag {
	return &cli.StringFlag{Name: "data-dir", Value: config.DefaultDataDir, Usage: "where knode keeps its state, keys and staged components", EnvVars: []string{"KNODE_DATA_DIR"}}
}

func jsonFlag() cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: "print one JSON object instead of a table (for scripts)"}
}

// nodeFlags are shared by init and join.
func nodeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "node-name", Usage: "this node's name in the cluster (default: the host name)"},
		&cli.StringFlag{Name: "bind", Value: config.DefaultBind, Usage: "host:port where gossip listens (TCP and UDP)"},
		&cli.StringFlag{Name: "advertise", Usage: "host:port peers should use to reach this node (default: --bind's address; with an unspecified --bind, on join this host's address toward the peer, on init its first private address)"},
		dataDirFlag(),
		&cli.BoolFlag{Name: "dry-run", Usage: "touch nothing outside --data-dir: list every host change instead of making it"},
		&cli.BoolFlag{Name: "foreground", Usage: "run the agent in this process until SIGINT/SIGTERM (then leave the cluster) instead of installing knode.service"},
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "agent log level: debug, info, warn or error"},
		&cli.DurationFlag{Name: "timeout", Value: defaultReadyTimeout,
			Usage: "how long to wait for this node's local apiserver (masters), then for the node to be Ready; slow machines need more (an emulated VM: 30m)"},
		// Hidden: for tests and the lab, to watch certificates renew in minutes.
		&cli.DurationFlag{Name: "cert-lifetime", Hidden: true,
			Usage: "FOR TESTING: lifetime of the leaf certificates this node issues and signs, kept in --data-dir (default one year); renewed when a third is left"},
	}
}

// defaultReadyTimeout is init's and join's --timeout: minutes more than an
// ordinary machine needs (about 10 s to Ready in the container lab).
const defaultReadyTimeout = 10 * time.Minute

// readyTimeout reads --timeout: at least a minute.
func readyTimeout(c *cli.Context) (time.Duration, error) {
	d := c.Duration("timeout")
	if d < time.Minute {
		return 0, config.Usagef("--timeout %s: too short for a node to come up; give at least 1m (default %s; an emulated VM needs about 30m)", d, defaultReadyTimeout)
	}
	return d, nil
}

// certLifetime reads the hidden --cert-lifetime: 0 (the default) or at least a minute.
func certLifetime(c *cli.Context) (time.Duration, error) {
	d := c.Duration("cert-lifetime")
	if d != 0 && d < time.Minute {
		return 0, config.Usagef("--cert-lifetime %s: too short to renew in time; give at least 1m (it is for tests; leave it out for one year)", d)
	}
	return d, nil
}

// nodeConfig reads and validates the node flags.
func nodeConfig(c *cli.Context) (config.Node, error) {
	n := config.Node{Name: c.String("node-name"), DataDir: c.String("data-dir")}
	if n.Name == "" {
		n.Name = config.DefaultNodeName()
	}
	// --timeout is read again where it is used; checked here, before anything is made.
	if _, err := readyTimeout(c); err != nil {
		return n, err
	}
	var err error
	if n.Bind, err = config.ParseHostPort("--bind", c.String("bind"), 7946); err != nil {
		return n, err
	}
	if s := c.String("advertise"); s != "" {
		if n.Advertise, err = config.ParseHostPort("--advertise", s, n.Bind.Port()); err != nil {
			return n, err
		}
	}
	return n, n.Validate()
}

// clusterConfig reads and validates the init flags.
func clusterConfig(c *cli.Context) (config.Cluster, error) {
	cl := config.Cluster{
		Name:         c.String("cluster-name"),
		NodeCIDRMask: c.Int("node-cidr-mask"),
		Masters:      c.Int("masters"),
		Network:      c.String("network"),
		TaintMasters: c.Bool("taint-masters"),
	}
	var err error
	if cl.PodCIDR, err = config.ParsePrefix("--pod-cidr", c.String("pod-cidr")); err != nil {
		return cl, err
	}
	if cl.ServiceCIDR, err = config.ParsePrefix("--service-cidr", c.String("service-cidr")); err != nil {
		return cl, err
	}
	return cl, cl.Validate()
}

func logLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, config.Usagef("--log-level %q: use debug, info, warn or error", s)
	}
	return l, nil
}

// advertiseNote flags an unspecified bind with no --advertise, where
// memberlist picks an address on its own.
func advertiseNote(n config.Node) string {
	if n.Advertise.IsValid() || !n.Bind.Addr().IsUnspecified() {
		return ""
	}
	return fmt.Sprintf("gossip binds %s; peers will be told this host's first private address (use --advertise to choose)", n.Bind)
}
