package hostprep

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"path"
	"strings"
	"time"

	"knode.dev/knode/manifests"
)

// A master that is not the cluster's first joins the running etcd cluster:
// it is added as a member through a master whose etcd runs ("etcdctl member
// add"), then starts its own etcd with --initial-cluster-state=existing and the
// membership etcd reported. Once its etcd has data, its manifest is left alone:
// etcd ignores the initial-cluster flags after the first start.

// The member list is read serializably (from the answering member alone): once
// this node is added but not started, a linearizable read needs a quorum that
// only this node's etcd can complete.

// etcdJoinTimeout bounds the retries: a member added just before us must
// start before etcd accepts another (strict reconfiguration check).
const etcdJoinTimeout = 3 * time.Minute

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

type etcdMember struct {
	Name     string   `json:"name"`
	PeerURLs []string `json:"peerURLs"`
}

// joinEtcd adds this node as an etcd member (unless it is one already) and
// returns the membership to start with.
func joinEtcd(ctx context.Context, e *Env, others []Node) ([]manifests.EtcdMember, error) {
	s := e.Spec
	var endpoints []string
	for _, m := range others {
		endpoints = append(endpoints, "https://"+netip.AddrPortFrom(m.Address, 2379).String())
	}
	base := []string{
		"--endpoints", strings.Join(endpoints, ","),
		"--cacert", path.Join(PKIDir, manifests.EtcdCACert),
		"--cert", path.Join(PKIDir, manifests.APIServerEtcdCert),
		"--key", path.Join(PKIDir, manifests.APIServerEtcdKey),
		"--dial-timeout", "5s", "--command-timeout", "15s",
	}
	etcdctl := path.Join(s.Payload.BinDir, "etcdctl")
	self := "https://" + netip.AddrPortFrom(s.Self.Address, 2380).String()
	deadline := time.Now().Add(etcdJoinTimeout)
	var last error
	for {
		out, err := e.Host.Exec.Run(ctx, etcdctl, append(base, "member", "list", "--consistency=s", "-w", "json")...)
		if err == nil {
			var list struct{ Members []etcdMember }
			if err = json.Unmarshal(out, &list); err == nil {
				if members, ok := etcdMembership(list.Members, self, s); ok {
					return members, nil
				}
				_, err = e.Host.Exec.Run(ctx, etcdctl, append(base, "member", "add", s.Self.Name, "--peer-urls", self)...)
				if err == nil {
					continue // read the membership back
				}
			}
		}
		last = err
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("join the etcd cluster through %s: %w", strings.Join(endpoints, ","), last)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(3 * time.Second):
		}
	}
}

// etcdMembership turns etcd's member list into --initial-cluster entries;
// ok is false while self is not a member yet. Members not started yet have no
// name in etcd's list: their names come from the masters' addresses.
func etcdMembership(list []etcdMember, self string, s *Spec) ([]manifests.EtcdMember, bool) {
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
		host := strings.TrimSuffix(strings.TrimPrefix(u, "https://"), ":2380")
		addr, err := netip.ParseAddr(host)
		if err != nil || name == "" {
			continue
		}
		out = append(out, manifests.EtcdMember{Name: name, Address: addr})
	}
	return out, found
}
