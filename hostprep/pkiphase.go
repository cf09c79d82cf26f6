package hostprep

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path"
	"time"

	"knode.dev/knode/manifests"
	"knode.dev/knode/pki"
)

// Kubeconfig paths under /etc/kubernetes.
const (
	KubeletKubeconfig   = KubernetesDir + "/kubelet.conf"
	KubeProxyKubeconfig = KubernetesDir + "/kube-proxy.conf"
	AdminKubeconfig     = KubernetesDir + "/admin.conf"
	// SuperAdminKubeconfig is in system:masters, which no RBAC change can
	// revoke: for emergencies and for binding admin.conf's group.
	SuperAdminKubeconfig = KubernetesDir + "/super-admin.conf"
	// AuditPolicyPath is the apiserver's audit policy.
	AuditPolicyPath = KubernetesDir + "/" + manifests.AuditPolicyFile
)

// leaf is one credential the PKI phase keeps in PKIDir.
type leaf struct {
	// name is the file name without .crt/.key, relative to PKIDir.
	name string
	spec pki.CertSpec
	// given is a pre-issued credential, used when this node cannot sign.
	given *pki.Credential
	// ca signs it: nil for the cluster CA.
	ca *pki.CA
	// kubeconfig, when set, is written with this credential embedded.
	kubeconfig string
}

// apiServerNames returns the apiserver certificate's SANs.
func apiServerNames(s *Spec) ([]string, []netip.Addr) {
	d := s.Cluster.Domain
	dns := []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + d, "localhost"}
	ips := []netip.Addr{s.Cluster.ServiceCIDR.Masked().Addr().Next(), netip.MustParseAddr("127.0.0.1")}
	for _, m := range s.Masters() {
		dns = append(dns, m.Name)
		ips = append(ips, m.Address)
	}
	return dns, ips
}

// leaves lists the credentials this node needs.
func leaves(s *Spec) []leaf {
	self := s.Self
	ls := []leaf{
		{name: "kubelet-client", spec: pki.KubeletClient(self.Name), given: s.PKI.Kubelet, kubeconfig: KubeletKubeconfig},
		{name: "kube-proxy", spec: pki.CertSpec{CommonName: "system:kube-proxy", Client: true}, given: s.PKI.KubeProxy, kubeconfig: KubeProxyKubeconfig},
		{name: "kubelet-serving", spec: pki.KubeletServing(self.Name, self.Address), given: s.PKI.KubeletServing},
	}
	if !self.Master {
		return withLifetime(ls, s.CertLifetime)
	}
	dns, ips := apiServerNames(s)
	etcd := s.PKI.EtcdCA
	local := []netip.Addr{self.Address, netip.MustParseAddr("127.0.0.1")}
	return withLifetime(append(ls,
		leaf{name: "apiserver", spec: pki.CertSpec{CommonName: "kube-apiserver", DNSNames: dns, IPs: ips, Server: true}},
		leaf{name: "apiserver-kubelet-client", spec: pki.CertSpec{CommonName: "kube-apiserver-kubelet-client", Organizations: []string{"system:masters"}, Client: true}},
		leaf{name: "apiserver-etcd-client", spec: pki.CertSpec{CommonName: "kube-apiserver-etcd-client", Client: true}, ca: etcd},
		leaf{name: "etcd/server", spec: pki.CertSpec{CommonName: self.Name, DNSNames: []string{self.Name, "localhost"}, IPs: local, Server: true, Client: true}, ca: etcd},
		leaf{name: "etcd/peer", spec: pki.CertSpec{CommonName: self.Name, DNSNames: []string{self.Name, "localhost"}, IPs: local, Server: true, Client: true}, ca: etcd},
		leaf{name: "front-proxy-client", spec: pki.CertSpec{CommonName: manifests.FrontProxyClientName, Client: true}, ca: s.PKI.FrontProxyCA},
		leaf{name: "controller-manager", spec: pki.CertSpec{CommonName: "system:kube-controller-manager", Client: true}, kubeconfig: path.Join(KubernetesDir, manifests.ControllerManagerConf)},
		leaf{name: "scheduler", spec: pki.CertSpec{CommonName: "system:kube-scheduler", Client: true}, kubeconfig: path.Join(KubernetesDir, manifests.SchedulerConf)},
		leaf{name: "super-admin", spec: pki.CertSpec{CommonName: "kubernetes-super-admin", Organizations: []string{"system:masters"}, Client: true}, kubeconfig: SuperAdminKubeconfig},
		leaf{name: "admin", spec: pki.CertSpec{CommonName: "kubernetes-admin", Organizations: []string{manifests.ClusterAdminsGroup}, Client: true}, kubeconfig: AdminKubeconfig},
	), s.CertLifetime)
}

// withLifetime sets the lifetime of every leaf issued here (0: pki.LeafValidity).
func withLifetime(ls []leaf, d time.Duration) []leaf {
	for i := range ls {
		ls[i].spec.Validity = d
	}
	return ls
}

// apiServerURL is the apiserver this node's clients talk to: the node-local
// endpoint, which the agent keeps pointed at the healthy masters, so that no
// client depends on one master and a change of masters rewrites no file.
func apiServerURL() string { return "https://" + APIEndpoint().String() }

func pkiPhase() Phase {
	return Phase{
		Name:        PhasePKI,
		Description: "write the CA, this node's certificates and the kubeconfigs; valid existing ones are reused",
		Plan:        planPKI,
		PlanReset: func(ctx context.Context, e *Env) ([]Change, error) {
			return planRemove(e, PKIDir, KubeletKubeconfig, KubeProxyKubeconfig, AdminKubeconfig, SuperAdminKubeconfig, AuditPolicyPath,
				path.Join(KubernetesDir, manifests.ControllerManagerConf), path.Join(KubernetesDir, manifests.SchedulerConf)), nil
		},
	}
}

func planPKI(ctx context.Context, e *Env) ([]Change, error) {
	s := e.Spec
	ca := s.PKI.CA
	if ca == nil {
		return nil, errors.New("no cluster CA in the spec")
	}
	f, err := e.Facts(ctx)
	if err != nil {
		return nil, err
	}
	server := apiServerURL()
	var cs []Change
	add := func(name string, data []byte, perm uint32) error {
		c, err := planFile(e, name, data, fsMode(perm))
		cs = append(cs, c...)
		return err
	}
	if err := add(path.Join(PKIDir, manifests.CACert), ca.CertPEM, 0o644); err != nil {
		return nil, err
	}
	if s.Self.Master {
		if ca.Key == nil {
			return nil, errors.New("master without the CA key: the controller manager signs with it")
		}
		if err := add(path.Join(PKIDir, manifests.CAKey), ca.KeyPEM, 0o600); err != nil {
			return nil, err
		}
		if s.PKI.ServiceAccountKeyPEM == nil || s.PKI.ServiceAccountPubPEM == nil {
			return nil, errors.New("master without the service-account key pair")
		}
		if err := add(path.Join(PKIDir, manifests.ServiceAccountKey), s.PKI.ServiceAccountKeyPEM, 0o600); err != nil {
			return nil, err
		}
		if err := add(path.Join(PKIDir, manifests.ServiceAccountPub), s.PKI.ServiceAccountPubPEM, 0o644); err != nil {
			return nil, err
		}
		sec, err := masterFiles(s)
		if err != nil {
			return nil, err
		}
		for _, f := range sec {
			if err := add(f.path, f.data, f.perm); err != nil {
				return nil, err
			}
		}
	}
	for _, l := range leaves(s) {
		cred, err := credential(e, l, f.Now)
		if err != nil {
			return nil, err
		}
		base := path.Join(PKIDir, l.name)
		if err := add(base+".crt", cred.CertPEM, 0o644); err != nil {
			return nil, err
		}
		if err := add(base+".key", cred.KeyPEM, 0o600); err != nil {
			return nil, err
		}
		if l.kubeconfig != "" {
			kc := manifests.KubeconfigFile(manifests.Kubeconfig{Cluster: s.Cluster.Name, Server: server, CAPEM: ca.CertPEM,
				User: l.spec.CommonName, CertPEM: cred.CertPEM, KeyPEM: cred.KeyPEM})
			if err := add(l.kubeconfig, kc, 0o600); err != nil {
				return nil, err
			}
		}
	}
	return cs, nil
}

// credential returns the leaf's credential: the one on disk if it is valid
// for the spec and not due for renewal (pki.Due), else the pre-issued one,
// else a new one signed here.
func credential(e *Env, l leaf, now time.Time) (*pki.Credential, error) {
	ca := e.Spec.PKI.CA
	if l.ca != nil {
		ca = l.ca
	}
	base := path.Join(PKIDir, l.name)
	certPEM, errC := e.Host.Files.ReadFile(base + ".crt")
	keyPEM, errK := e.Host.Files.ReadFile(base + ".key")
	if errC == nil && errK == nil {
		have := &pki.Credential{CertPEM: certPEM, KeyPEM: keyPEM}
		err := pki.Verify(ca, have, l.spec, now, 0)
		if err == nil && !pki.Due(ca, certPEM, now) {
			return have, nil
		}
		if err == nil {
			err = errors.New("due for renewal")
		}
		e.Log.Info("replacing certificate", "name", l.name, "reason", err)
	}
	if l.given != nil {
		if err := pki.Verify(ca, l.given, l.spec, now, 0); err != nil {
			return nil, fmt.Errorf("pre-issued %s credential: %w", l.name, err)
		}
		return l.given, nil
	}
	if ca.Key == nil {
		return nil, fmt.Errorf("%s credential for %s: this node does not hold the CA key and no master issued one", l.name, l.spec.CommonName)
	}
	return pki.Issue(ca, l.spec, now)
}
