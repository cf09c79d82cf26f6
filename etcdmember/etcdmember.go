// Package etcdmember talks to the cluster's etcd through etcd's JSON API (its
// gRPC gateway: the gRPC calls of rpc.proto as typed JSON over HTTPS, see
// gateway.go), with the apiserver's etcd client certificate: it lists, checks
// and removes members (whether a removal keeps quorum is decided by
// CheckRemove, a pure function) and saves, lists and prunes snapshots.
package etcdmember

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
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
	endpoints []string
	http      *http.Client
	timeout   time.Duration
}

// Dial prepares a client of etcd at c.Endpoints; it connects on the first
// call.
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
	if len(c.Endpoints) == 0 {
		return nil, errors.New("etcd client: no endpoints")
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		DialContext:         (&net.Dialer{Timeout: c.Timeout}).DialContext,
		TLSHandshakeTimeout: c.Timeout,
		ForceAttemptHTTP2:   true,
	}
	return &Client{endpoints: c.Endpoints, http: &http.Client{Transport: tr}, timeout: c.Timeout}, nil
}

// Close ends the client's idle connections.
func (c *Client) Close() error {
	c.http.CloseIdleConnections()
	return nil
}

// List returns every member and whether each answers on its client URLs.
func (c *Client) List(ctx context.Context) ([]Member, error) {
	resp, err := c.memberList(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("etcd member list: %w", err)
	}
	out := make([]Member, 0, len(resp.Members))
	for _, m := range resp.Members {
		mem := Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, Learner: m.IsLearner}
		for _, u := range m.ClientURLs {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := c.post(sctx, u, pathStatus, struct{}{}, &statusResponse{})
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
		err := c.postAny(rctx, pathMemberRemove, memberRemoveRequest{ID: id}, &struct{}{})
		cancel()
		if err == nil || c.gone(ctx, id) {
			// (A member removing itself may stop before it answers.)
			return nil
		}
		if !errors.Is(err, ErrUnhealthy) {
			return fmt.Errorf("etcd member remove %x: %w", id, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd member remove %x: %w (until %w)", id, err, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// memberList reads the member list through any endpoint; a linearizable
// read goes through the leader, a serializable one is the answering
// member's view. A read is safe to repeat, so etcd's Unavailable (no leader
// for the moment, "leader changed") is tried again until the timeout, as
// etcd's own client retries reads.
func (c *Client) memberList(ctx context.Context, linearizable bool) (memberListResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	for {
		var resp memberListResponse
		err := c.postAny(ctx, pathMemberList, memberListRequest{Linearizable: linearizable}, &resp)
		var etcdErr *Error
		if err == nil || !errors.As(err, &etcdErr) || etcdErr.Code != codeUnavailable {
			return resp, err
		}
		select {
		case <-ctx.Done():
			return resp, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// gone reports whether the member list, read through any endpoint, no longer
// has id.
func (c *Client) gone(ctx context.Context, id uint64) bool {
	resp, err := c.memberList(ctx, true)
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
