// Package etcdmember talks to the cluster's etcd through etcd's own client
// (go.etcd.io/etcd/client/v3, the version the payload embeds), with the
// apiserver's etcd client certificate: it lists, checks and removes members
// (whether a removal keeps quorum is decided by CheckRemove, a pure
// function) and saves, lists and prunes snapshots.
package etcdmember

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Member is one etcd member as the cluster reports it, with whether its
// client URL answered a status request.
type Member struct {
	ID       uint64
	Name     string // empty until the member has started once
	PeerURLs []string
	Learner  bool
	Healthy  bool
}

// Config says how to reach etcd: client URLs and the files of the CA and of
// a client certificate etcd accepts.
type Config struct {
	Endpoints                 []string
	CAFile, CertFile, KeyFile string
	// Timeout bounds each call (default 5 s).
	Timeout time.Duration
}

// Client is a connection to the cluster's etcd.
type Client struct {
	cli     *clientv3.Client
	cfg     clientv3.Config
	timeout time.Duration
}

// Dial connects to etcd (lazily: the first call may still fail).
func Dial(c Config) (*Client, error) {
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	caPEM, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("etcd CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("etcd CA %s: no certificate", c.CAFile)
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("etcd client certificate %s: %w", c.CertFile, err)
	}
	cfg := clientv3.Config{
		Endpoints: c.Endpoints, DialTimeout: c.Timeout, Logger: zap.NewNop(),
		TLS: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", c.Endpoints, err)
	}
	return &Client{cli: cli, cfg: cfg, timeout: c.Timeout}, nil
}

// Close ends the connection.
func (c *Client) Close() error { return c.cli.Close() }

// List returns every member and whether each answers on its client URLs.
func (c *Client) List(ctx context.Context) ([]Member, error) {
	lctx, cancel := context.WithTimeout(ctx, c.timeout)
	resp, err := c.cli.MemberList(lctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("etcd member list: %w", err)
	}
	out := make([]Member, 0, len(resp.Members))
	for _, m := range resp.Members {
		mem := Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, Learner: m.IsLearner}
		for _, u := range m.ClientURLs {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := c.cli.Status(sctx, u)
			cancel()
			if err == nil {
				mem.Healthy = true
				break
			}
		}
		out = append(out, mem)
	}
	return out, nil
}

// Remove removes the member with id. etcd refuses a removal while its leader
// has known the remaining members active for less than 5 s ("unhealthy
// cluster", right after a membership change or a restart): Remove tries
// again every half second until ctx ends.
func (c *Client) Remove(ctx context.Context, id uint64) error {
	for {
		rctx, cancel := context.WithTimeout(ctx, c.timeout)
		_, err := c.cli.MemberRemove(rctx, id)
		cancel()
		if err == nil || c.gone(ctx, id) {
			// (A member removing itself may stop before it answers.)
			return nil
		}
		if !errors.Is(err, rpctypes.ErrUnhealthy) {
			return fmt.Errorf("etcd member remove %x: %w", id, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd member remove %x: %w (until %w)", id, err, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// gone reports whether the member list, read through any endpoint, no longer
// has id.
func (c *Client) gone(ctx context.Context, id uint64) bool {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.cli.MemberList(ctx)
	if err != nil {
		return false
	}
	for _, m := range resp.Members {
		if m.ID == id {
			return false
		}
	}
	return true
}

// Find returns the member named name, or, for one that never started (no
// name yet), the one whose peer URL is peerURL.
func Find(ms []Member, name, peerURL string) (Member, bool) {
	for _, m := range ms {
		if m.Name == name && name != "" {
			return m, true
		}
	}
	for _, m := range ms {
		for _, u := range m.PeerURLs {
			if u == peerURL && m.Name == "" {
				return m, true
			}
		}
	}
	return Member{}, false
}

// ErrQuorum says a removal would leave etcd without a healthy majority.
var ErrQuorum = errors.New("removing it would lose etcd quorum")

// CheckRemove reports whether removing the member id leaves a healthy
// majority of the remaining voting members (learners do not vote): etcd
// needs one to commit the removal itself and to serve afterwards.
func CheckRemove(ms []Member, id uint64) error {
	voters, healthy, found := 0, 0, false
	for _, m := range ms {
		if m.ID == id {
			found = true
			continue
		}
		if m.Learner {
			continue
		}
		voters++
		if m.Healthy {
			healthy++
		}
	}
	if !found {
		return fmt.Errorf("no etcd member %x", id)
	}
	if quorum := voters/2 + 1; healthy < quorum {
		return fmt.Errorf("%w: %d members would remain, %d of them healthy, and a quorum is %d", ErrQuorum, voters, healthy, quorum)
	}
	return nil
}
