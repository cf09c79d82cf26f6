package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"knode.dev/knode/hostprep"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/agent"
	"knode.dev/knode/datadir"
)

func resetCommand() *cli.Command {
	return &cli.Command{
		Name:  "reset",
		Usage: "leave the cluster for good and undo everything knode did on this host",
		Description: "Tells the cluster this node is gone (its pod subnet and seat are released), stops the agent,\n" +
			"reverts every host change knode made, and deletes --data-dir unless --keep-data.\n" +
			"Works on a half-initialised host too.",
		Flags: []cli.Flag{
			dataDirFlag(),
			&cli.BoolFlag{Name: "keep-data", Usage: "keep --data-dir (keys, token, staged components)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "list what would be removed; change nothing"},
		},
		Action: func(c *cli.Context) error {
			dir := datadir.Dir{Root: c.String("data-dir")}
			p := newProgress(c.App.ErrWriter)
			if c.Bool("dry-run") {
				for _, line := range resetPlan(c.Context, dir, openHostForReset, c.Bool("keep-data")) {
					p.Note("%s", line)
				}
				return nil
			}
			if err := leaveCluster(c.Context, dir, p); err != nil {
				return err
			}
			if err := resetHost(c, dir, p); err != nil {
				return err
			}
			if c.Bool("keep-data") {
				p.Step("removing cluster state from %s (keeping the rest)", dir.Root)
				if err := dir.RemoveState(); err != nil {
					p.Fail()
					return err
				}
			} else {
				p.Step("removing %s", dir.Root)
				if err := os.RemoveAll(dir.Root); err != nil {
					p.Fail()
					return fmt.Errorf("remove %s: %w", dir.Root, err)
				}
			}
			p.Finish("reset")
			return nil
		},
	}
}

// leaveCluster makes the running agent (or, if none runs, a short-lived one)
// announce the node's removal and leave.
func leaveCluster(ctx context.Context, dir datadir.Dir, p *progress) error {
	if !dir.Initialised() {
		p.Note("%s holds no cluster membership; nothing to leave", dir.Root)
		return nil
	}
	p.Step("leaving the cluster")
	// A master first leaves etcd (up to 10 s), then waits for its release (10 s).
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := agent.RequestRemove(ctx, dir.Socket())
	if err == nil {
		switch {
		case res.EtcdMember != "":
			p.Note("removed this master's etcd member %s", res.EtcdMember)
		case res.EtcdError != "":
			p.Note("warning: this master's etcd member stays (run `knode remove` on another master): %s", res.EtcdError)
		}
		return nil
	}
	if !errors.Is(err, agent.ErrNoAgent) {
		p.Fail()
		return err
	}
	os.Remove(dir.Socket()) // stale
	o, _, err := restartOptions(dir)
	if err != nil {
		p.Fail()
		return err
	}
	ag, err := agent.Start(ctx, o)
	if err != nil {
		p.Fail()
		return fmt.Errorf("announce removal: %w", err)
	}
	return ag.Remove(10 * time.Second)
}

// resetPlan lists what reset would do, changing nothing: leave the cluster,
// revert each host change on the host that open returns (nil when knode never
// configured it), remove the data.
func resetPlan(ctx context.Context, dir datadir.Dir, open func(datadir.Dir) (*hostprep.Host, error), keepData bool) []string {
	var lines []string
	if dir.Initialised() {
		lines = append(lines, "would tell the cluster this node is removed (its pod subnet and any master seat are released) and stop the agent")
	} else {
		lines = append(lines, dir.Root+" holds no cluster membership; nothing to leave")
	}
	switch h, err := open(dir); {
	case err != nil:
		lines = append(lines, "cannot inspect the host: "+oneLine(err))
	case h == nil:
		lines = append(lines, "knode never configured this host; nothing to revert there")
	default:
		lines = append(lines, hostResetPlan(ctx, h, dir.Root)...)
	}
	if keepData {
		lines = append(lines, "would remove the cluster state from "+dir.Root+", keeping the staged components")
	} else {
		lines = append(lines, "would remove "+dir.Root)
	}
	return lines
}

// hostResetPlan lists, newest phase first as reset runs them, the changes
// reverting h would make. It only reads the host; a phase that cannot be
// inspected (as an ordinary user, iptables cannot be read) says so instead.
func hostResetPlan(ctx context.Context, h *hostprep.Host, dataDir string) []string {
	var lines []string
	for _, ph := range slices.Backward(hostprep.Phases()) {
		var out bytes.Buffer
		_, err := hostprep.Reset(ctx, h, hostprep.ResetOptions{DataDir: dataDir, KeepData: true, DryRun: true,
			Phases: []hostprep.Phase{ph}, Out: &out})
		for l := range strings.Lines(out.String()) {
			if l = strings.TrimSpace(l); l != "" {
				lines = append(lines, l)
			}
		}
		if err != nil {
			lines = append(lines, fmt.Sprintf("[%s] cannot be planned here: %s", ph.Name, oneLine(err)))
		}
	}
	if len(lines) == 0 {
		lines = append(lines, "the host holds nothing knode made; nothing to revert there")
	}
	return lines
}

// openHostForReset opens the real host for planning its reset, or returns nil
// when an ordinary user's node never configured it (a --dry-run node).
func openHostForReset(dir datadir.Dir) (*hostprep.Host, error) {
	if os.Geteuid() != 0 {
		if _, err := os.Stat(dir.Path("hostprep")); err != nil {
			return nil, nil
		}
	}
	h, err := hostprep.NewLinuxHost("/")
	if err != nil {
		return nil, fmt.Errorf("open the host: %w", err)
	}
	return h, nil
}
