package etcdmember

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Membership returns the members as the answering member knows them, without
// probing their health. The read is serializable: right after a member is
// added and before it starts, a two-member cluster has no quorum until the
// new one runs, and a linearizable read would wait for that.
func (c *Client) Membership(ctx context.Context) ([]Member, error) {
	lctx, cancel := context.WithTimeout(ctx, c.timeout)
	resp, err := c.cli.MemberList(lctx, clientv3.WithSerializable())
	cancel()
	if err != nil {
		return nil, fmt.Errorf("etcd member list through %v: %w", c.cfg.Endpoints, err)
	}
	out := make([]Member, 0, len(resp.Members))
	for _, m := range resp.Members {
		out = append(out, Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, Learner: m.IsLearner})
	}
	return out, nil
}

// Add adds a voting member that will listen on peerURL. A member with that
// peer URL already (added earlier, started or not) counts as added: a join
// whose answer was lost is tried again. etcd refuses an addition that would
// leave fewer started members than a quorum (an earlier added member has
// not started yet, or one is down): that error is returned for the caller to
// retry once the other member runs.
func (c *Client) Add(ctx context.Context, peerURL string) error {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	_, err := c.cli.MemberAdd(actx, []string{peerURL})
	cancel()
	// etcd derives a new member's ID from its peer URLs and the time: a second
	// addition is refused with either error.
	if err != nil && !errors.Is(err, rpctypes.ErrPeerURLExist) && !errors.Is(err, rpctypes.ErrMemberExist) {
		return fmt.Errorf("etcd member add %s through %v: %w", peerURL, c.cfg.Endpoints, err)
	}
	return nil
}

// Update moves the member named name (or, never started, the one at
// oldPeerURL) to peerURL: its node's address changed. A member already at
// peerURL counts as moved. etcd needs a quorum of started members to commit
// the change, so it is made through the other members while this one cannot
// yet listen on its new address.
func (c *Client) Update(ctx context.Context, name, oldPeerURL, peerURL string) error {
	ms, err := c.Membership(ctx)
	if err != nil {
		return err
	}
	m, ok := Find(ms, name, oldPeerURL)
	if !ok {
		m, ok = Find(ms, "", peerURL)
	}
	switch {
	case !ok:
		return fmt.Errorf("etcd member update of %s (%s): no such member through %v", name, oldPeerURL, c.cfg.Endpoints)
	case len(m.PeerURLs) == 1 && m.PeerURLs[0] == peerURL:
		return nil
	}
	uctx, cancel := context.WithTimeout(ctx, c.timeout)
	_, err = c.cli.MemberUpdate(uctx, m.ID, []string{peerURL})
	cancel()
	if err != nil {
		return fmt.Errorf("etcd member update %s (%x) to %s through %v: %w", name, m.ID, peerURL, c.cfg.Endpoints, err)
	}
	return nil
}
