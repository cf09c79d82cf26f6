package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/agent"
	"knode.dev/knode/config"
	"knode.dev/knode/datadir"
	"knode.dev/knode/gossip"
	"knode.dev/knode/pki"
)

// bringUp is the part init and join share once flags are valid: start the
// agent, wait for this node's subnet, then either keep running (foreground) or
// hand over to knode.service.
type bringUp struct {
	c     *cli.Context
	node  config.Node
	token *pki.Token // joining
	// tokenFlag is how the user gave the token, for errors that blame it.
	tokenFlag string
	peers     []string
	create    *agent.Genesis
	p         *progress
	timeout   time.Duration
	// readyTimeout (--timeout) bounds the wait for the local apiserver and
	// then the wait for the node to be Ready.
	readyTimeout time.Duration
	// onReady prints the result once the node has its subnet.
	onReady  func(addr string)
	joinAddr string
	// json prints the outcome and timings as JSON on stdout.
	json bool
}

func (b *bringUp) run() error {
	c := b.c
	level, err := logLevel(c.String("log-level"))
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))
	foreground, dryRun := c.Bool("foreground"), c.Bool("dry-run")
	b.json = c.Bool("json")
	if b.readyTimeout, err = readyTimeout(c); err != nil {
		return err
	}
	if !dryRun {
		if foreground {
			return config.Usagef("--foreground runs the agent without configuring the host: add --dry-run (without --foreground, knode configures the host and installs knode.service)")
		}
		if err := requireRoot("install knode.service and configure the host"); err != nil {
			return err
		}
	}
	lifetime, err := certLifetime(c)
	if err != nil {
		return err
	}
	if b.peers != nil {
		b.p.StepAs("join through a peer", "joining through %v", b.peers)
	} else {
		b.p.StepAs("agent start", "starting the agent on %s", b.node.Bind)
	}
	ag, err := agent.Start(c.Context, agent.Options{
		Dir: datadir.Dir{Root: b.node.DataDir}, Token: b.token, Node: b.node, Peers: b.peers,
		Logger: log, Serve: true, Create: b.create, CertLifetime: lifetime,
	})
	if err != nil {
		if errors.Is(err, gossip.ErrWrongKey) || errors.Is(err, agent.ErrWrongCluster) || errors.Is(err, gossip.ErrTokenRefused) {
			err = config.Usagef("%s: %v", cmp.Or(b.tokenFlag, "--token"), err) // the token is the bad value
		}
		return b.fail(nil, 0, err)
	}
	b.p.StepAs("pod subnet", "waiting for a pod subnet")
	ctx, cancel := context.WithTimeout(c.Context, b.timeout)
	as, err := ag.WaitAssigned(ctx)
	cancel()
	if err != nil {
		if errors.Is(err, agent.ErrRefused) {
			err = config.Usagef("--node-name %s: %v", b.node.Name, err) // the name is the bad value
		}
		return b.fail(ag, 3*time.Second, err)
	}
	role := "worker"
	if as.Seat >= 0 {
		role = fmt.Sprintf("master (seat %d)", as.Seat)
	}
	b.p.Note("node %s: %s, pod subnet %s, gossip %s", ag.Name(), role, as.PodCIDR, ag.Addr())
	b.joinAddr = ag.Addr()
	if b.onReady != nil && (dryRun || foreground) {
		b.p.done()
		b.onReady(b.joinAddr)
	}
	if dryRun {
		b.p.Note("dry run: the host was not touched; knode would make these changes:")
		for _, line := range plannedHostChanges(c.Context, ag, c.StringSlice("skip-phases"), c.StringSlice("ignore-preflight-errors")) {
			b.p.Note("  %s", line)
		}
	}
	if !foreground {
		if dryRun {
			// Nothing runs on: leave no would-be cluster behind.
			if err := b.abandon(ag, 2*time.Second); err != nil {
				b.p.Fail()
				return fmt.Errorf("dry run done, but not everything it made could be removed (`knode reset` removes the rest): %w", err)
			}
			b.p.Finish("dry run done; nothing kept")
			return nil
		}
		return b.configureHost(ag)
	}
	b.p.Finish("agent running in the foreground; Ctrl-C leaves the cluster")
	select {
	case <-c.Context.Done():
		fmt.Fprintln(c.App.ErrWriter, "==> leaving the cluster")
		return ag.Stop(true)
	case <-ag.Done():
		return nil // removed by `knode reset`
	}
}

func requireRoot(what string) error {
	if os.Geteuid() != 0 {
		return cli.Exit(fmt.Sprintf("knode needs root to %s: run it with sudo, or add --dry-run --foreground to try it as a user", what), exitError)
	}
	return nil
}

// abandon undoes a start that failed or was only a dry run, so that init or
// join can simply be rerun: the agent, when one started, announces this node's
// removal and leaves, and the state init or join wrote is removed. It returns
// what could not be undone.
func (b *bringUp) abandon(ag *agent.Agent, timeout time.Duration) error {
	var errs []error
	if ag != nil {
		if err := ag.Remove(timeout); err != nil {
			errs = append(errs, fmt.Errorf("announce this node's removal: %w", err))
		}
	}
	if err := (datadir.Dir{Root: b.node.DataDir}).RemoveState(); err != nil {
		errs = append(errs, fmt.Errorf("remove the state in %s: %w", b.node.DataDir, err))
	}
	return errors.Join(errs...)
}

// fail ends a failed start: the current step fails, the start is abandoned,
// and what could not be undone is printed under the step, so that err, the
// cause, stays the command's one-line error.
func (b *bringUp) fail(ag *agent.Agent, timeout time.Duration, err error) error {
	b.p.Fail()
	if cerr := b.abandon(ag, timeout); cerr != nil {
		b.p.Note("cleaning up failed too (`knode reset` removes the rest): %s", oneLine(cerr))
	}
	return err
}
