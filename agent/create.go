package agent

import (
	"time"

	"knode.dev/knode/config"
	"knode.dev/knode/datadir"
	"knode.dev/knode/gossip"
	"knode.dev/knode/pki"
)

// Create makes a new cluster's trust material in dir: the CA, the
// service-account key pair (both kept under secrets/) and the join token. It
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
	saKey, saPub, err := pki.NewServiceAccountKey()
	if err != nil {
		return nil, pki.Token{}, err
	}
	tok, err := pki.NewToken(ca)
	if err != nil {
		return nil, pki.Token{}, err
	}
	if err := dir.Ensure(); err != nil {
		return nil, pki.Token{}, err
	}
	if err := dir.SaveSecrets(datadir.Secrets{CAKey: ca.KeyPEM, SAKey: saKey, SAPub: saPub}); err != nil {
		return nil, pki.Token{}, err
	}
	return &gossip.ClusterInfo{Cluster: c, CACert: ca.CertPEM, Created: now.Unix()}, tok, nil
}
