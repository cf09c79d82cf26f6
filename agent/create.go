package agent

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"time"

	"knode.dev/knode/config"
	"knode.dev/knode/datadir"
	"knode.dev/knode/gossip"
	"knode.dev/knode/pki"
)

// Genesis is what Create makes for Start (Options.Create): the new
// cluster's identity and its first join token.
type Genesis struct {
	Cluster *gossip.ClusterInfo
	Token   pki.Token // admits workers
	// MasterToken also lets a joiner take a free master seat (the first
	// node holds it too: that is how it takes seat 0).
	MasterToken pki.Token
	// TokenTTL is how long the first tokens admit joiners; 0: no expiry.
	TokenTTL time.Duration
}

// Create makes a new cluster's trust material in dir: the CA and the other
// master-only keys (newSecrets, all kept under secrets/), the cluster
// identity signed by the CA, and the first join tokens (valid for
// DefaultTokenTTL; the caller may change Genesis.TokenTTL). The data
// directory is marked initialised only once the agent has started, so a failed
// init can simply be rerun.
func Create(dir datadir.Dir, c config.Cluster, now time.Time) (*Genesis, error) {
	if dir.Initialised() {
		return nil, config.Usagef("--data-dir %s already holds a node of a cluster: run `knode reset --data-dir %s` first, or choose another --data-dir", dir.Root, dir.Root)
	}
	ca, err := pki.NewCA(c.Name, now)
	if err != nil {
		return nil, err
	}
	tok, err := pki.NewToken(ca)
	if err != nil {
		return nil, err
	}
	master, err := pki.NewToken(ca)
	if err != nil {
		return nil, err
	}
	decPub, decKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate the decision key: %w", err)
	}
	info := &gossip.ClusterInfo{Cluster: c, CACert: ca.CertPEM, Created: now.Unix(), DecisionKey: gossip.Key(decPub)}
	digest := sha256.Sum256(info.SignedBytes())
	if info.Sig, err = ca.Key.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
		return nil, fmt.Errorf("sign the cluster identity: %w", err)
	}
	if err := dir.Ensure(); err != nil {
		return nil, err
	}
	sec, err := newSecrets(c.Name, ca.KeyPEM, decKey, now)
	if err != nil {
		return nil, err
	}
	if err := dir.SaveSecrets(sec); err != nil {
		return nil, err
	}
	return &Genesis{Cluster: info, Token: tok, MasterToken: master, TokenTTL: DefaultTokenTTL}, nil
}
