package main

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"

	"knode.dev/knode/agent"
	"knode.dev/knode/datadir"
	"knode.dev/knode/hostprep"
)

// Phases that run after the agent hands over to knode.service: they start
// services (the units phase starts knode.service itself).
var afterHandover = []string{hostprep.PhaseUnits, hostprep.PhaseImages, hostprep.PhaseStaticPods}

// configureHost stages the payload, gets this node's certificates, applies the
// host phases, hands the agent over to knode.service and waits until the node
// is Ready. Until the handover a failure undoes everything; after it, the
// error says how to undo.
func (b *bringUp) configureHost(ag *agent.Agent) error {
	c, p := b.c, b.p
	ctx := c.Context
	dir := datadir.Dir{Root: b.node.DataDir}
	abort := func(err error) error { return b.fail(ag, 5*time.Second, err) }
	p.Step("staging the payload under %s", dir.Root)
	p.done()
	hopts, err := hostOptions(ctx, dir.Root, indent(c.App.ErrWriter))
	if err != nil {
		return abort(err)
	}
	p.Step("getting this node's certificates")
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	creds, err := ag.Credentials(cctx)
	cancel()
	if err != nil {
		return abort(err)
	}
	ag.SetHost(hopts)
	spec, err := ag.HostSpec(creds)
	if err != nil {
		return abort(err)
	}
	skip := c.StringSlice("skip-phases")
	ignore := c.StringSlice("ignore-preflight-errors")
	p.Step("configuring the host")
	p.done()
	first := &hostprep.Runner{Skip: append(append([]string{}, skip...), afterHandover...), IgnorePreflightErrors: ignore, Out: indent(c.App.ErrWriter)}
	if _, err := first.Apply(ctx, &spec, hopts.Host); err != nil {
		return abort(err)
	}
	if err := ag.MarkHost(); err != nil {
		return abort(err)
	}
	// knode.service takes over from the data directory, on the same gossip port.
	if err := ag.Stop(false); err != nil {
		p.Fail()
		return fmt.Errorf("hand over to knode.service: stop this process's agent: %w; the host is partly configured: fix the cause and run `knode reset`, then try again", err)
	}
	var only []string
	for _, ph := range afterHandover {
		if !slices.Contains(skip, ph) {
			only = append(only, ph)
		}
	}
	second := &hostprep.Runner{Only: only, NoRollback: true, Out: indent(c.App.ErrWriter)}
	if _, err := second.Apply(ctx, &spec, hopts.Host); err != nil {
		p.Fail()
		return fmt.Errorf("%w; the host is partly configured: fix the cause and run `knode reset`, then try again", err)
	}
	p.Step("waiting for node %s to be Ready with pod CIDR %s", spec.Self.Name, spec.Self.PodCIDR)
	if err := waitNodeReady(ctx, hopts.Payload.BinDir+"/kubectl", spec.Self.Name, spec.Self.PodCIDR.String(), 10*time.Minute); err != nil {
		p.Fail()
		return err
	}
	p.Finish("node " + spec.Self.Name + " is Ready")
	if b.onReady != nil {
		b.onReady(b.joinAddr)
	}
	return nil
}

// waitNodeReady polls the apiserver with the kubelet's own credentials until
// the node reports Ready and its Node object carries the agreed pod CIDR (set
// by the allocator's agent once the kubelet has registered the node).
func waitNodeReady(ctx context.Context, kubectl, node, podCIDR string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", hostprep.KubeletKubeconfig, "get", "node", node,
			"-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status} {.spec.podCIDR}`).Output()
		last = strings.TrimSpace(string(out))
		if err == nil && last == "True "+podCIDR {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s not Ready after %s (last answer: %q); see `journalctl -u kubelet` and `knode status`", node, timeout, last)
		case <-time.After(2 * time.Second):
		}
	}
}
