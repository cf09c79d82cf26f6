package hostprep

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"path"
	"strings"
	"time"

	"knode.dev/knode/internal/poll"
	"knode.dev/knode/manifests"
)

// A master that is not the cluster's first joins the running etcd cluster:
// it is added as a member through a master whose etcd runs (etcd's client
// API, Host.Etcd), then starts its own etcd with --initial-cluster-state=existing and the
// membership etcd reported. Once its etcd has data, its manifest is left alone:
// etcd ignores the initial-cluster flags after the first start.

// The member list is read serializably (from the answering member alone): once
// this node is added but not started, a linearizable read needs a quorum that
// only this node's etcd can complete.

// etcdJoinTimeout bounds the retries: a member added just before us must
// start before etcd accepts another (strict reconfiguration check).
const etcdJoinTimeout = 3 * time.Minute

// etcdJoinRetry spaces the attempts.
const etcdJoinRetry = 3 * time.Second

// planEtcd returns the changes for etcd.yaml.
func planEtcd(e *Env, cp manifests.ControlPlane) ([]Change, error) {
	s := e.Spec
	manifest := path.Join(ManifestsDir, "etcd.yaml")
	var others []Node
	for _, m := range s.Masters() {
		if m.Name != s.Self.Name {
			others = append(others, m)
		}
	}
	hasData := e.Host.Files.Exists(path.Join(EtcdDataDir, "member"))
	switch {
	case hasData && e.Host.Files.Exists(manifest) && s.OldAddress.IsValid() && s.OldAddress != s.Self.Address:
		return planEtcdMove(e, cp, manifest, others)
	case hasData && e.Host.Files.Exists(manifest):
		return nil, nil // a member already: flags no longer matter
	case len(others) == 0:
		cp.Members = []manifests.EtcdMember{{Name: s.Self.Name, Address: s.Self.Address}}
		return planFile(e, manifest, manifests.EtcdPod(cp), 0o600)
	}
	e.pendingWrites = append(e.pendingWrites, manifest)
	return []Change{change(fmt.Sprintf("add %s to the etcd cluster of %s and write %s", s.Self.Name, names(others), manifest), func(ctx context.Context) error {
		members, err := joinEtcd(ctx, e, others)
		if err != nil {
			return err
		}
		cp.Members, cp.EtcdClusterState = members, "existing"
		// As planFile does: a host's own file there is backed up for reset.
		if err := noteWrite(e, manifest); err != nil {
			return err
		}
		return e.Host.Files.WriteFile(manifest, manifests.EtcdPod(cp), 0o600)
	})}, nil
}

func names(ns []Node) string {
	var out []string
	for _, n := range ns {
		out = append(out, n.Name)
	}
	return strings.Join(out, ", ")
}

// joinEtcd adds this node as an etcd member through any running master
// (unless it is one already, started or not) and returns the membership to
// start with.
func joinEtcd(ctx context.Context, e *Env, others []Node) ([]manifests.EtcdMember, error) {
	s := e.Spec
	if e.Host.Etcd == nil {
		return nil, fmt.Errorf("join the etcd cluster of %s: this host has no etcd client", names(others))
	}
	var endpoints []string
	for _, m := range others {
		endpoints = append(endpoints, "https://"+netip.AddrPortFrom(m.Address, 2379).String())
	}
	self := "https://" + netip.AddrPortFrom(s.Self.Address, 2380).String()
	// One attempt: read the membership; when this node is not in it, add
	// it and read it back.
	var members []manifests.EtcdMember
	var last error
	attempt := func() bool {
		for added := false; ; added = true {
			list, err := e.Host.Etcd.Members(ctx, endpoints)
			if last = err; err != nil {
				return false
			}
			var ok bool
			if members, ok = etcdMembership(list, self, s); ok {
				return true
			}
			if added {
				last = fmt.Errorf("%s added, but not in the membership read back", self)
				return false
			}
			if last = e.Host.Etcd.AddMember(ctx, endpoints, self); last != nil {
				return false
			}
		}
	}
	wctx, cancel := context.WithTimeout(ctx, etcdJoinTimeout)
	defer cancel()
	err := poll.Until(wctx, etcdJoinRetry, func() (bool, error) {
		if attempt() {
			return true, nil
		}
		e.Log.Info("etcd join: will retry", "peer", self, "err", last)
		return false, nil
	})
	switch {
	case err == nil:
		return members, nil
	case ctx.Err() != nil:
		return nil, fmt.Errorf("join the etcd cluster through %s as %s: %w (last: %w)", strings.Join(endpoints, ","), self, ctx.Err(), last)
	}
	return nil, fmt.Errorf("join the etcd cluster through %s as %s (tried for %s): %w", strings.Join(endpoints, ","), self, etcdJoinTimeout, last)
}

// etcdMembership turns etcd's member list into --initial-cluster entries;
// ok is false while self is not a member yet. Members not started yet have no
// name in etcd's list: their names come from the masters' addresses.
func etcdMembership(list []EtcdPeer, self string, s *Spec) ([]manifests.EtcdMember, bool) {
	byPeer := map[string]string{}
	for _, m := range append([]Node{s.Self}, s.Peers...) {
		byPeer["https://"+netip.AddrPortFrom(m.Address, 2380).String()] = m.Name
	}
	var out []manifests.EtcdMember
	found := false
	for _, m := range list {
		if len(m.PeerURLs) == 0 {
			continue
		}
		u := m.PeerURLs[0]
		name := m.Name
		if u == self {
			found, name = true, s.Self.Name
		}
		if name == "" {
			name = byPeer[u]
		}
		addr, ok := peerAddr(u)
		if !ok || name == "" {
			continue
		}
		out = append(out, manifests.EtcdMember{Name: name, Address: addr})
	}
	return out, found
}

// peerAddr is the address of a peer URL as knode writes them,
// https://ADDR:2380; any other form is not one of knode's members.
func peerAddr(peerURL string) (netip.Addr, bool) {
	u, err := url.Parse(peerURL)
	if err != nil || u.Scheme != "https" || u.Port() != "2380" || u.Path != "" {
		return netip.Addr{}, false
	}
	addr, err := netip.ParseAddr(u.Hostname())
	return addr, err == nil
}
