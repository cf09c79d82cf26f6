package hostprep

import (
	"errors"
	"path"

	"knode.dev/knode/manifests"
)

// secretFile is one file of a master's security material.
type secretFile struct {
	path string
	data []byte
	perm uint32
}

// masterFiles lists what a master writes beyond the cluster CA and the
// service-account keys: the etcd CA (which etcd alone trusts), the
// front-proxy CA (the aggregation layer), the encryption-at-rest
// configuration holding the key, and the audit policy. Each CA's key is
// written too, as kubeadm does, so that a master can renew its own leaves.
func masterFiles(s *Spec) ([]secretFile, error) {
	p := s.PKI
	switch {
	case p.EtcdCA == nil || p.EtcdCA.Key == nil:
		return nil, errors.New("master without the etcd CA key: etcd's certificates come from it")
	case p.FrontProxyCA == nil || p.FrontProxyCA.Key == nil:
		return nil, errors.New("master without the front-proxy CA key: the apiserver's proxy client certificate comes from it")
	case len(p.EncryptionKey) == 0:
		return nil, errors.New("master without the encryption key: the apiserver encrypts Secrets with it")
	}
	return []secretFile{
		{path.Join(PKIDir, manifests.EtcdCACert), p.EtcdCA.CertPEM, 0o644},
		{path.Join(PKIDir, manifests.EtcdCAKey), p.EtcdCA.KeyPEM, 0o600},
		{path.Join(PKIDir, manifests.FrontProxyCACert), p.FrontProxyCA.CertPEM, 0o644},
		{path.Join(PKIDir, manifests.FrontProxyCAKey), p.FrontProxyCA.KeyPEM, 0o600},
		{path.Join(PKIDir, manifests.EncryptionConfigFile), manifests.EncryptionConfig(p.EncryptionKey), 0o600},
		{AuditPolicyPath, manifests.AuditPolicy(), 0o600},
	}, nil
}
