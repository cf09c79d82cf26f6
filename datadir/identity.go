package datadir

import (
	"net/netip"
	"time"
)

// Identity is what a node remembers about itself across restarts.
type Identity struct {
	Name      string         `json:"name"`
	Bind      netip.AddrPort `json:"bind"`
	Advertise netip.AddrPort `json:"advertise,omitzero"`
	NodeKey   []byte         `json:"nodeKey"` // X25519 private key (secrets are sealed to it)
	SignKey   []byte         `json:"signKey"` // Ed25519 seed: signs this node's records and letters
	Gen       uint64         `json:"gen"`
	PodCIDR   netip.Prefix   `json:"podCIDR,omitzero"` // last subnet held
	Peers     []string       `json:"peers,omitempty"`  // where to rejoin after restart
	// GossipKeys is the cluster's gossip keyring (primary first), received
	// at admission: a restarted node needs no token.
	GossipKeys [][]byte `json:"gossipKeys"`
	// SeatToken and SeatProof go into this node's claims: the proof that it
	// joined with that token (a master token lets it take a free seat).
	SeatToken [8]byte  `json:"seatToken,omitzero"`
	SeatProof [32]byte `json:"seatProof,omitzero"`
	// Host is set once knode configured this machine (not a --dry-run node):
	// the agent then keeps the host's pod network current.
	Host bool `json:"host,omitempty"`
	// CertLifetime is the test-only leaf certificate lifetime this node was
	// set up with (knode init/join --cert-lifetime); 0: the default year.
	CertLifetime time.Duration `json:"certLifetime,omitempty"`
	// EtcdRestore is when this master last restored etcd from a snapshot
	// (unix nanoseconds; its node record announces it), and EtcdFollowed the
	// newest restore its etcd is part of, its own or another master's.
	EtcdRestore  uint64 `json:"etcdRestore,omitempty"`
	EtcdFollowed uint64 `json:"etcdFollowed,omitempty"`
	// HostPodCIDR is the subnet the host was last configured for (cbr0, the
	// CNI range, the kubelet): when a healed partition moves this node to
	// another subnet, the agent configures the host again.
	HostPodCIDR netip.Prefix `json:"hostPodCIDR,omitzero"`
	// HostAddr is the address the host was last configured for (the
	// kubelet's --node-ip, certificates, etcd's URLs): when the node's
	// address changes, the agent configures the host again.
	HostAddr netip.Addr `json:"hostAddr,omitzero"`
}

// Secrets is the master-only material, stored under secrets/.
type Secrets struct {
	CAKey []byte `json:"caKey"`
	SAKey []byte `json:"saKey"`
	SAPub []byte `json:"saPub"`
	// DecisionKey is the Ed25519 seed that signs decisions (seats, subnets,
	// releases); the cluster identity carries its public half.
	DecisionKey []byte `json:"decisionKey"`
	// EtcdCACert and EtcdCAKey are the CA that etcd alone trusts.
	EtcdCACert []byte `json:"etcdCACert"`
	EtcdCAKey  []byte `json:"etcdCAKey"`
	// FrontProxyCACert and FrontProxyCAKey sign the apiserver's aggregation
	// proxy client certificate.
	FrontProxyCACert []byte `json:"frontProxyCACert"`
	FrontProxyCAKey  []byte `json:"frontProxyCAKey"`
	// EncryptionKey encrypts Secrets in etcd (pki.EncryptionKeySize bytes).
	EncryptionKey []byte `json:"encryptionKey"`
}

// Secret file names under secrets/.
const (
	CAKeyFile       = "ca.key"
	SAKeyFile       = "sa.key"
	SAPubFile       = "sa.pub"
	DecisionKeyFile = "decision.key"
	EtcdCACertFile  = "etcd-ca.crt"
	EtcdCAKeyFile   = "etcd-ca.key"
	FrontProxyCert  = "front-proxy-ca.crt"
	FrontProxyKey   = "front-proxy-ca.key"
	EncryptionFile  = "encryption.key"
)

// files maps each secret file to its field.
func (s *Secrets) files() map[string]*[]byte {
	return map[string]*[]byte{CAKeyFile: &s.CAKey, SAKeyFile: &s.SAKey, SAPubFile: &s.SAPub, DecisionKeyFile: &s.DecisionKey,
		EtcdCACertFile: &s.EtcdCACert, EtcdCAKeyFile: &s.EtcdCAKey, FrontProxyCert: &s.FrontProxyCACert, FrontProxyKey: &s.FrontProxyCAKey,
		EncryptionFile: &s.EncryptionKey}
}

// SaveSecrets writes the master-only keys (0600 in a 0700 directory).
func (d Dir) SaveSecrets(s Secrets) error {
	if err := d.Ensure(); err != nil {
		return err
	}
	for name, b := range s.files() {
		if err := d.WriteFile(SecretsDir+"/"+name, *b); err != nil {
			return err
		}
	}
	return nil
}

// LoadSecrets reads the master-only keys; ok is false when this node has none
// (or only some: a data directory from before the etcd and front-proxy CAs).
func (d Dir) LoadSecrets() (s Secrets, ok bool, err error) {
	for name, dst := range s.files() {
		if !d.Exists(SecretsDir + "/" + name) {
			return Secrets{}, false, nil
		}
		b, err := d.ReadFile(SecretsDir + "/" + name)
		if err != nil {
			return Secrets{}, false, err
		}
		*dst = b
	}
	return s, true, nil
}
