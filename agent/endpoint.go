package agent

import (
	"crypto/x509"
	"fmt"
	"net/netip"
	"slices"

	"knode.dev/knode/apilb"
	"knode.dev/knode/gossip"
	"knode.dev/knode/hostprep"
	"knode.dev/knode/pki"
	"knode.dev/knode/roles"
)

// The node-local apiserver endpoint (package apilb) starts with the agent,
// before anything else on the node needs it: the kubelet of a worker reaches
// the cluster only through it, and a master's kubelet must reach it before
// its own apiserver is ready. The decision loop keeps its backends equal to
// the seated masters' apiservers, so masters coming and going rewrite no
// kubeconfig and restart nothing.

// startEndpoint listens on o.APIEndpoint with the masters known so far.
func (a *Agent) startEndpoint() error {
	if !a.opts.APIEndpoint.IsValid() {
		return nil
	}
	ci := a.state.Cluster()
	cert, err := pki.ParseCert(ci.CACert)
	if err != nil {
		return fmt.Errorf("node-local apiserver endpoint: cluster CA: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	prefer := ""
	if as, ok := a.Assignment(); ok {
		prefer = netip.AddrPortFrom(as.Addr, hostprep.APIServerPort).String()
	}
	lb, err := apilb.Start(apilb.Options{Listen: a.opts.APIEndpoint.String(), Roots: roots, Prefer: prefer,
		Logger: a.log.With("component", "apiserver-endpoint")})
	if err != nil {
		return err
	}
	a.endpoint = lb
	a.keepEndpoint()
	return nil
}

// keepEndpoint points the endpoint at the seated masters' apiservers. It
// runs in the decision loop; the balancer ignores a set that has not changed.
func (a *Agent) keepEndpoint() {
	if a.endpoint == nil {
		return
	}
	if bs := apiServers(a.state.Snapshot()); !slices.Equal(bs, a.lastBackends) {
		a.log.Info("apiserver endpoint backends", "backends", bs)
		a.endpoint.SetBackends(bs)
		a.lastBackends = bs
	}
}

// apiServers lists the apiservers of the masters in seat order: every seated
// master not being removed, alive or not (the endpoint's health checks tell).
func apiServers(snap gossip.Snapshot) []string {
	var out []string
	for _, m := range roles.Masters(snap) {
		as := snap.Assignments[m]
		if snap.Nodes[m].Removed || !as.Addr.IsValid() {
			continue
		}
		out = append(out, netip.AddrPortFrom(as.Addr, hostprep.APIServerPort).String())
	}
	return out
}

// EndpointStatus is the node-local endpoint's view of each backend; nil when
// this agent runs none.
func (a *Agent) EndpointStatus() []apilb.Status {
	if a.endpoint == nil {
		return nil
	}
	return a.endpoint.Backends()
}
