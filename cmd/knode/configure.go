package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"knode.dev/knode/agent"
	"knode.dev/knode/datadir"
	"knode.dev/knode/hostprep"
	"knode.dev/knode/kubeapi"
)

// Phases that run after the agent hands over to knode.service: the units
// phase starts knode.service itself (and the kubelet, last).
var afterHandover = []string{hostprep.PhaseUnits, hostprep.PhaseControllers}

// configureHost stages the payload, gets this node's certificates, applies the
// host phases, hands the agent over to knode.service and waits until the node
// is Ready. Until the handover a failure undoes everything; after it, the
// error says how to undo.
func (b *bringUp) configureHost(ag *agent.Agent) error {
	c, p := b.c, b.p
	ctx := c.Context
	dir := datadir.Dir{Root: b.node.DataDir}
	abort := func(err error) error { return b.fail(ag, 5*time.Second, err) }
	if launcherStaged(launchOf(c), dir.Root) {
		p.StepAs("staging check", "checking the payload the launcher staged under %s", dir.Root)
	} else {
		p.StepAs("staging", "staging the payload under %s", dir.Root)
	}
	hopts, err := hostOptions(ctx, dir.Root, p.Writer())
	if err != nil {
		return abort(err)
	}
	p.StepAs("certificates", "getting this node's certificates")
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
	p.Header("configuring the host")
	timed := func(plan string) func(string, time.Time, time.Time) {
		return func(phase string, start, end time.Time) {
			if phase == "plan" {
				phase = plan
			}
			p.Row("phase "+phase, end.Sub(start), end)
		}
	}
	first := &hostprep.Runner{Skip: append(append([]string{}, skip...), afterHandover...), IgnorePreflightErrors: ignore,
		Out: p.Writer(), Timed: timed("plan")}
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
	second := &hostprep.Runner{Only: only, NoRollback: true, Out: p.Writer(), Timed: timed("plan after handover"),
		APIServerWait: b.readyTimeout}
	if _, err := second.Apply(ctx, &spec, hopts.Host); err != nil {
		p.Fail()
		return fmt.Errorf("%w; the host is partly configured: fix the cause and run `knode reset`, then try again", err)
	}
	p.Header("waiting for node %s to be Ready with pod CIDR %s", spec.Self.Name, spec.Self.PodCIDR)
	if err := b.waitCluster(ctx, spec); err != nil {
		p.Fail()
		return err
	}
	p.Finish("node " + spec.Self.Name + " is Ready")
	if b.onReady != nil && !b.json {
		b.onReady(b.joinAddr)
	}
	if b.json {
		return b.printJSON(spec)
	}
	return nil
}

// waitCluster waits, with the node's own credentials, for what makes this
// node part of a working cluster: its control plane (masters), the apiserver,
// its Node registered, Ready and carrying the agreed pod CIDR; on init also
// CoreDNS. Each wait becomes a row of the timing table.
func (b *bringUp) waitCluster(ctx context.Context, spec hostprep.Spec) error {
	timeout := b.readyTimeout
	name, cidr := spec.Self.Name, spec.Self.PodCIDR.String()
	api, err := kubeapi.FromKubeconfig(hostprep.KubeletKubeconfig)
	if err != nil {
		return fmt.Errorf("read the kubelet's kubeconfig: %w", err)
	}
	defer api.Close()
	var ws []wait
	if spec.Self.Master && !slices.Contains(b.c.StringSlice("skip-phases"), hostprep.PhaseStaticPods) {
		ws = append(ws, staticPodsStarted(name))
	}
	ws = append(ws, apiServing(api))
	ws = append(ws, nodeWaits(api, name, cidr)...)
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := runWaits(wctx, b.p, ws); err != nil {
		return fmt.Errorf("node %s not Ready with pod CIDR %s after %s: %w; see `journalctl -u kubelet` and `knode status` (a slow machine may need a longer --timeout)", name, cidr, timeout, err)
	}
	if b.create == nil {
		return nil
	}
	// init: the cluster's DNS. Not part of the node being Ready, so a
	// failure is reported, not fatal.
	admin, err := kubeapi.FromKubeconfig(hostprep.AdminKubeconfig)
	if err != nil {
		b.p.Note("cannot wait for CoreDNS: %v", err)
		return nil
	}
	defer admin.Close()
	const dnsTimeout = 2 * time.Minute
	dctx, cancel := context.WithTimeout(ctx, dnsTimeout)
	defer cancel()
	if err := runWaits(dctx, b.p, []wait{coreDNSReady(admin)}); err != nil {
		b.p.Note("warning: CoreDNS not ready after %s (%v); see `knode kubectl -n kube-system get pods`", dnsTimeout, err)
	}
	return nil
}

// printJSON prints the outcome and the timing table as one JSON object.
func (b *bringUp) printJSON(spec hostprep.Spec) error {
	out := struct {
		Node    string `json:"node"`
		Master  bool   `json:"master"`
		PodCIDR string `json:"podCIDR"`
		Join    string `json:"join,omitempty"`
		// MasterJoin is the command for machines that are to take the
		// free master seats (with --masters 3 or 5).
		MasterJoin string   `json:"masterJoin,omitempty"`
		Seconds    float64  `json:"seconds"`
		Timings    []timing `json:"timings"`
	}{Node: spec.Self.Name, Master: spec.Self.Master, PodCIDR: spec.Self.PodCIDR.String(),
		Seconds: seconds(b.p.Elapsed()), Timings: b.p.Timings()}
	if g := b.create; g != nil {
		out.Join = fmt.Sprintf("knode join %s --token %s", b.joinAddr, g.Token)
		if g.Cluster.Cluster.Masters > 1 {
			out.MasterJoin = fmt.Sprintf("knode join %s --token %s", b.joinAddr, g.MasterToken)
		}
	}
	enc := json.NewEncoder(b.c.App.Writer)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
