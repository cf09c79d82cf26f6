package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/agent"
	"knode.dev/knode/datadir"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show the cluster as this node's agent sees it: members, state, roles, pod subnets",
		Description: "Asks the local agent over the unix socket in --data-dir. Exits non-zero when no agent answers.\n" +
			"--json prints {\"cluster\":{...},\"self\":...,\"members\":[...]} for scripts.",
		Flags: []cli.Flag{dataDirFlag(), jsonFlag()},
		Action: func(c *cli.Context) error {
			ctx, cancel := context.WithTimeout(c.Context, 5*time.Second)
			defer cancel()
			st, err := agent.QueryStatus(ctx, datadir.Dir{Root: c.String("data-dir")}.Socket())
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(c.App.Writer, st, time.Now())
			return nil
		},
	}
}

func printStatus(w io.Writer, st agent.Status, now time.Time) {
	cl := st.Cluster
	fmt.Fprintf(w, "cluster %s: pods %s (/%d per node), services %s, %d master(s), network %s\n\n",
		cl.Name, cl.PodCIDR, cl.NodeCIDRMask, cl.ServiceCIDR, cl.Masters, cl.Network)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tSTATE\tROLES\tPOD CIDR\tVERSION\tLAST SEEN")
	for _, m := range st.Members {
		name := m.Name
		if name == st.Self {
			name += " (self)"
		}
		roles := strings.Join(m.Roles, ",")
		cidr := m.PodCIDR
		if m.Error != "" {
			roles, cidr = "-", "error: "+m.Error
		}
		if roles == "" {
			roles, cidr = "-", "(pending)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, m.Address, m.State, roles, cidr, m.Version, ago(now, m.LastSeen))
	}
	tw.Flush()
	if len(st.Refused) > 0 {
		var parts []string
		for _, author := range slices.Sorted(maps.Keys(st.Refused)) {
			parts = append(parts, fmt.Sprintf("%s %d", author, st.Refused[author]))
		}
		fmt.Fprintf(w, "\nrefused gossip input (bad signature or values; a misbehaving or hostile peer), by claimed author: %s\n", strings.Join(parts, ", "))
	}
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < 2*time.Second {
		return "now"
	}
	return d.Round(time.Second).String() + " ago"
}
