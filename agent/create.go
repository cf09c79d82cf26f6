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

// Create makes a new cluster's trust material in dir: the CA and the other
// master-only keys (newSecrets, all kept under secrets/),
// the cluster identity signed by the CA, and the join token. It
// returns the cluster identity to pass to Start (Options.Create); the data
// directory is marked initialised only once the agent has started, so a failed
// init can simply be rerun.
func Create(dir datadir.Dir, c config.Cluster, now time.Time) (*gossip.ClusterInfo, pki.Token, error) {
	if dir.Initialised() {
		return nil, pki.Token{}, config.Usagef("--data-dir %s already holds a node of a cluster: run `knode reset --data-dir %s` first, or choose another --data-dir", dir.Root, dir.Root)
	}
	ca, err := pki.NewCA(c.Name, now)
	if err != nil {
		return nil, pki.Token{}, err
	}
	tok, err := pki.NewToken(ca)
	if err != nil {
		return nil, pki.Token{}, err
	}
	decPub, decKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, pki.Token{}, fmt.Errorf("generate the decision key: %w", err)
	}
	info := &gossip.ClusterInfo{Cluster: c, CACert: ca.CertPEM, Created: now.Unix(), DecisionKey: gossip.Key(decPub)}
	digest := sha256.Sum256(info.SignedBytes())
	if info.Sig, err = ca.Key.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
		return nil, pki.Token{}, fmt.Errorf("sign the cluster identity: %w", err)
	}
	if err := dir.Ensure(); err != nil {
		return nil, pki.Token{}, err
	}
	sec, err := newSecrets(c.Name, ca.KeyPEM, decKey, now)
	if err != nil {
		return nil, pki.Token{}, err
	}
	if err := dir.SaveSecrets(sec); err != nil {
		return nil, pki.Token{}, err
	}
	return info, tok, nil
}
