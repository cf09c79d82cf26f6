package main

import (
	"cmp"
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
	"knode.dev/knode/internal/poll"
)

// exitUnhealthy is `knode status`'s exit code when the agent answered and
// the cluster is not healthy (1 stays "no answer or another error").
const exitUnhealthy = 3

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show the cluster as this node's agent sees it: members, roles, pod subnets and each node's health",
		Description: "Asks the local agent over the unix socket in --data-dir. Every node checks its own components\n" +
			"(containerd, kubelet, kube-proxy, Node Ready; on masters etcd, apiserver, controller-manager, scheduler;\n" +
			"its soonest certificate expiry) and gossips a signed summary when it changes, so this works on any\n" +
			"node, even when no apiserver answers.\n\n" +
			"Exit code: 0 when every member is alive, placed and passes every check; 3 when not; 1 when no\n" +
			"agent answers. --wait polls until healthy (or --timeout, then exits 3). --json prints\n" +
			"{\"cluster\":{...},\"self\":...,\"healthy\":bool,\"members\":[{...,\"healthy\",\"problems\",\"health\"}]}.",
		Flags: []cli.Flag{dataDirFlag(), jsonFlag(),
			&cli.BoolFlag{Name: "wait", Usage: "wait until the cluster is healthy (at most --timeout), then print the status"},
			&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "with --wait: how long to wait"},
		},
		Action: func(c *cli.Context) error {
			socket := datadir.Dir{Root: c.String("data-dir")}.Socket()
			st, err := queryStatus(c.Context, socket)
			if c.Bool("wait") && err == nil && !st.Healthy {
				st, err = waitHealthy(c.Context, socket, c.Duration("timeout"))
			}
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				if err := enc.Encode(st); err != nil {
					return err
				}
			} else {
				printStatus(c.App.Writer, st, time.Now())
			}
			if !st.Healthy {
				return cli.Exit("", exitUnhealthy)
			}
			return nil
		},
	}
}

func queryStatus(ctx context.Context, socket string) (agent.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return agent.QueryStatus(ctx, socket)
}

// waitHealthy asks the agent every second until the cluster is healthy or
// timeout passes; it returns the last status it got.
func waitHealthy(ctx context.Context, socket string, timeout time.Duration) (agent.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last agent.Status
	err := poll.Until(ctx, time.Second, func() (bool, error) {
		st, err := queryStatus(ctx, socket)
		switch {
		case err == nil:
			last = st
			return st.Healthy, nil
		case ctx.Err() == nil:
			last = st
			return false, err
		}
		return false, nil
	})
	if err != nil && ctx.Err() != nil {
		return last, nil // printed, then exit code 3
	}
	return last, err
}

func printStatus(w io.Writer, st agent.Status, now time.Time) {
	cl := st.Cluster
	fmt.Fprintf(w, "cluster %s: pods %s (/%d per node), services %s, %d master(s), network %s\n\n",
		cl.Name, cl.PodCIDR, cl.NodeCIDRMask, cl.ServiceCIDR, cl.Masters, cl.Network)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tSTATE\tROLES\tPOD CIDR\tHEALTH\tKUBELET\tCERTS\tVERSION\tLAST SEEN")
	var problems, warnings []string
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
		kubelet, certs := "-", "-"
		if h := m.Health; h != nil {
			kubelet = cmp.Or(h.KubeletVersion, "-")
			if h.CertExpiry != nil {
				certs = days(h.CertExpiry.Sub(now))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, m.Address, m.State, roles, cidr, healthWord(m),
			kubelet, certs, m.Version, ago(now, m.LastSeen))
		for _, p := range m.Problems {
			problems = append(problems, m.Name+": "+p)
		}
		for _, p := range m.Warnings {
			warnings = append(warnings, m.Name+": "+p)
		}
	}
	tw.Flush()
	for _, sec := range []struct {
		title string
		lines []string
	}{{"problems", problems}, {"warnings", warnings}} {
		if len(sec.lines) > 0 {
			fmt.Fprintf(w, "\n%s:\n  %s\n", sec.title, strings.Join(sec.lines, "\n  "))
		}
	}
	if len(st.Refused) > 0 {
		var parts []string
		for _, author := range slices.Sorted(maps.Keys(st.Refused)) {
			parts = append(parts, fmt.Sprintf("%s %d", author, st.Refused[author]))
		}
		fmt.Fprintf(w, "\nrefused gossip input (bad signature or values; a misbehaving or hostile peer), by claimed author: %s\n", strings.Join(parts, ", "))
	}
	if st.Healthy {
		fmt.Fprintln(w, "\ncluster healthy")
	} else {
		fmt.Fprintf(w, "\ncluster NOT healthy: %d problem(s)\n", len(problems))
	}
}

// healthWord is a member's HEALTH cell: ok, or what fails.
func healthWord(m agent.MemberStatus) string {
	switch {
	case m.Healthy:
		return "ok"
	case m.State != "alive":
		return m.State
	case m.Health == nil:
		return "unknown"
	}
	var bad []string
	for _, c := range m.Health.Checks {
		if !c.OK {
			bad = append(bad, c.What.String())
		}
	}
	if len(bad) == 0 {
		return "problem"
	}
	return strings.Join(bad, ",")
}

func days(d time.Duration) string {
	if d < 0 {
		return "expired"
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
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
