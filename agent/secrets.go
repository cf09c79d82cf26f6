package agent

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"knode.dev/knode/datadir"
	"knode.dev/knode/gossip"
	"knode.dev/knode/hostprep"
	"knode.dev/knode/pki"
)

// The master-only keys (datadir.Secrets) are made once, by init, and travel
// only to masters, sealed to each one's node key (shareSecrets,
// receiveSecrets): the cluster CA's key, the service-account key pair, the
// decision key, the etcd CA, the front-proxy CA and the key that encrypts
// Secrets at rest.

// newSecrets makes a new cluster's master-only keys around its CA key and
// decision key.
func newSecrets(clusterName string, caKey []byte, decKey ed25519.PrivateKey, now time.Time) (datadir.Secrets, error) {
	saKey, saPub, err := pki.NewServiceAccountKey()
	if err != nil {
		return datadir.Secrets{}, err
	}
	etcdCA, err := pki.NewEtcdCA(clusterName, now)
	if err != nil {
		return datadir.Secrets{}, err
	}
	proxyCA, err := pki.NewFrontProxyCA(clusterName, now)
	if err != nil {
		return datadir.Secrets{}, err
	}
	encKey, err := pki.NewEncryptionKey()
	if err != nil {
		return datadir.Secrets{}, err
	}
	return datadir.Secrets{CAKey: caKey, SAKey: saKey, SAPub: saPub, DecisionKey: decKey.Seed(),
		EtcdCACert: etcdCA.CertPEM, EtcdCAKey: etcdCA.KeyPEM, FrontProxyCACert: proxyCA.CertPEM, FrontProxyCAKey: proxyCA.KeyPEM,
		EncryptionKey: encKey}, nil
}

// checkSecrets reports why keys received from a master are not this
// cluster's complete set, or nil: the CA key must match the cluster's CA,
// the decision key its public half, and every other CA its own certificate.
func checkSecrets(ci *gossip.ClusterInfo, sec datadir.Secrets) error {
	if _, err := pki.LoadCA(ci.CACert, sec.CAKey); err != nil {
		return fmt.Errorf("cluster CA: %w", err)
	}
	if len(sec.DecisionKey) != ed25519.SeedSize ||
		gossip.Key(ed25519.NewKeyFromSeed(sec.DecisionKey).Public().(ed25519.PublicKey)) != ci.DecisionKey {
		return fmt.Errorf("not the cluster's decision key")
	}
	if _, err := pki.ParseKey(sec.SAKey); err != nil || len(sec.SAPub) == 0 {
		return fmt.Errorf("service-account key pair missing or unreadable")
	}
	if _, err := pki.LoadCA(sec.EtcdCACert, sec.EtcdCAKey); err != nil {
		return fmt.Errorf("etcd CA: %w", err)
	}
	if _, err := pki.LoadCA(sec.FrontProxyCACert, sec.FrontProxyCAKey); err != nil {
		return fmt.Errorf("front-proxy CA: %w", err)
	}
	if len(sec.EncryptionKey) != pki.EncryptionKeySize {
		return fmt.Errorf("encryption key of %d bytes, want %d", len(sec.EncryptionKey), pki.EncryptionKeySize)
	}
	return nil
}

// masterPKI fills a master's host spec with the master-only material beyond
// the cluster CA's key.
func masterPKI(p *hostprep.PKI, sec *datadir.Secrets) error {
	etcdCA, err := pki.LoadCA(sec.EtcdCACert, sec.EtcdCAKey)
	if err != nil {
		return fmt.Errorf("etcd CA in the secrets: %w", err)
	}
	proxyCA, err := pki.LoadCA(sec.FrontProxyCACert, sec.FrontProxyCAKey)
	if err != nil {
		return fmt.Errorf("front-proxy CA in the secrets: %w", err)
	}
	p.ServiceAccountKeyPEM, p.ServiceAccountPubPEM = sec.SAKey, sec.SAPub
	p.EtcdCA, p.FrontProxyCA, p.EncryptionKey = etcdCA, proxyCA, sec.EncryptionKey
	return nil
}
