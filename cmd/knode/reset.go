package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

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
				p.Note("would tell the cluster this node is removed, stop the agent and revert the host")
				if !c.Bool("keep-data") {
					p.Note("would remove %s", dir.Root)
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
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err := agent.RequestRemove(ctx, dir.Socket())
	if err == nil {
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
