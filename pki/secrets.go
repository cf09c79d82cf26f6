package pki

import (
	"crypto/rand"
	"fmt"
	"net/netip"
)

// EncryptionKeySize is the length of the key that encrypts Secrets in etcd
// (the apiserver's secretbox provider takes 32 bytes).
const EncryptionKeySize = 32

// NewEncryptionKey makes the key the apiserver encrypts Secrets at rest with.
func NewEncryptionKey() ([]byte, error) {
	k := make([]byte, EncryptionKeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generate the encryption-at-rest key: %w", err)
	}
	return k, nil
}

// KubeletServing is the spec of a node's kubelet serving certificate, which
// the apiserver verifies (--kubelet-certificate-authority) when it proxies
// exec, logs and port-forward: named for the node and valid for its name and
// the one address the cluster's decision binds it to.
func KubeletServing(nodeName string, addr netip.Addr) CertSpec {
	return CertSpec{CommonName: "system:node:" + nodeName, Organizations: []string{"system:nodes"},
		DNSNames: []string{nodeName}, IPs: []netip.Addr{addr}, Server: true}
}
