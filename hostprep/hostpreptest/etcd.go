package hostpreptest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"knode.dev/knode/hostprep"
)

// Etcd is a running etcd cluster's membership as its client API shows it. A
// member added through AddMember is listed with no name, as etcd lists one
// that has not started yet.
type Etcd struct {
	mu sync.Mutex
	// Peers is the membership.
	Peers []hostprep.EtcdPeer
	// Down lists endpoints that do not answer; a call fails when every
	// endpoint it is given is down.
	Down map[string]bool
	// AddErrs are returned by the next AddMember calls, one each, before
	// they succeed (etcd's refusals, such as "unhealthy cluster").
	AddErrs []error
	// Calls records each call: "members ENDPOINTS", "add ENDPOINTS PEERURL"
	// or "update ENDPOINTS NAME PEERURL".
	Calls []string
}

var _ hostprep.Etcd = (*Etcd)(nil)

// ErrNoEndpoint is returned when every endpoint of a call is down.
var ErrNoEndpoint = errors.New("context deadline exceeded: no etcd endpoint answered")

func (f *Etcd) reach(endpoints []string) error {
	for _, ep := range endpoints {
		if !f.Down[ep] {
			return nil
		}
	}
	return fmt.Errorf("etcd at %v: %w", endpoints, ErrNoEndpoint)
}

// Members implements hostprep.Etcd.
func (f *Etcd) Members(ctx context.Context, endpoints []string) ([]hostprep.EtcdPeer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls = append(f.Calls, "members "+strings.Join(endpoints, ","))
	if err := f.reach(endpoints); err != nil {
		return nil, err
	}
	out := make([]hostprep.EtcdPeer, len(f.Peers))
	for i, p := range f.Peers {
		out[i] = hostprep.EtcdPeer{Name: p.Name, PeerURLs: slices.Clone(p.PeerURLs)}
	}
	return out, nil
}

// AddMember implements hostprep.Etcd: a peer URL already listed counts as
// added.
func (f *Etcd) AddMember(ctx context.Context, endpoints []string, peerURL string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls = append(f.Calls, "add "+strings.Join(endpoints, ",")+" "+peerURL)
	if err := f.reach(endpoints); err != nil {
		return err
	}
	if len(f.AddErrs) > 0 {
		err := f.AddErrs[0]
		f.AddErrs = f.AddErrs[1:]
		return err
	}
	for _, p := range f.Peers {
		if slices.Contains(p.PeerURLs, peerURL) {
			return nil
		}
	}
	f.Peers = append(f.Peers, hostprep.EtcdPeer{PeerURLs: []string{peerURL}})
	return nil
}

// UpdatePeer implements hostprep.Etcd.
func (f *Etcd) UpdatePeer(ctx context.Context, endpoints []string, name, oldPeerURL, peerURL string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls = append(f.Calls, "update "+strings.Join(endpoints, ",")+" "+name+" "+peerURL)
	if err := f.reach(endpoints); err != nil {
		return err
	}
	for i, p := range f.Peers {
		if (p.Name == name && name != "") || slices.Contains(p.PeerURLs, oldPeerURL) || slices.Equal(p.PeerURLs, []string{peerURL}) {
			f.Peers[i].PeerURLs = []string{peerURL}
			return nil
		}
	}
	return fmt.Errorf("etcd member update of %s (%s): no such member", name, oldPeerURL)
}
