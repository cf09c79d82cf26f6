package hostprep

import (
	"context"
	"path"
	"path/filepath"

	"knode.dev/knode/etcdmember"
	"knode.dev/knode/manifests"
)

// EtcdClientConfig reaches etcd at endpoints with the apiserver's etcd client
// certificate, as the PKI phase writes it; etcd serves a certificate of its
// own CA.
func EtcdClientConfig(endpoints ...string) etcdmember.Config {
	return etcdmember.Config{Endpoints: endpoints,
		CAFile:   path.Join(PKIDir, manifests.EtcdCACert),
		CertFile: path.Join(PKIDir, manifests.APIServerEtcdCert),
		KeyFile:  path.Join(PKIDir, manifests.APIServerEtcdKey)}
}

// EtcdClient is the real Etcd: etcd's client/v3 through package etcdmember,
// one connection per call (a join makes a handful). Its credential files are
// read under Root, as RootFiles reads the host's.
type EtcdClient struct {
	Root string
}

var _ Etcd = EtcdClient{}

func (c EtcdClient) dial(endpoints []string) (*etcdmember.Client, error) {
	cfg := EtcdClientConfig(endpoints...)
	for _, f := range []*string{&cfg.CAFile, &cfg.CertFile, &cfg.KeyFile} {
		*f = filepath.Join(c.Root, *f)
	}
	return etcdmember.Dial(cfg)
}

// Members implements Etcd with a serializable member list.
func (c EtcdClient) Members(ctx context.Context, endpoints []string) ([]EtcdPeer, error) {
	cli, err := c.dial(endpoints)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	ms, err := cli.Membership(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]EtcdPeer, 0, len(ms))
	for _, m := range ms {
		out = append(out, EtcdPeer{Name: m.Name, PeerURLs: m.PeerURLs})
	}
	return out, nil
}

// AddMember implements Etcd.
func (c EtcdClient) AddMember(ctx context.Context, endpoints []string, peerURL string) error {
	cli, err := c.dial(endpoints)
	if err != nil {
		return err
	}
	defer cli.Close()
	return cli.Add(ctx, peerURL)
}

// UpdatePeer implements Etcd.
func (c EtcdClient) UpdatePeer(ctx context.Context, endpoints []string, name, oldPeerURL, peerURL string) error {
	cli, err := c.dial(endpoints)
	if err != nil {
		return err
	}
	defer cli.Close()
	return cli.Update(ctx, name, oldPeerURL, peerURL)
}
