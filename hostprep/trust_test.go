package hostprep_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"path"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"knode.dev/knode/hostprep"
	"knode.dev/knode/hostprep/hostpreptest"
	"knode.dev/knode/pki"
)

// flagOf returns --name's value in a static pod manifest's command.
func flagOf(t *testing.T, f *hostpreptest.Host, manifest, name string) string {
	t.Helper()
	b, err := f.Files.ReadFile(path.Join(hostprep.ManifestsDir, manifest))
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(b, &pod); err != nil {
		t.Fatalf("%s: %v", manifest, err)
	}
	for _, a := range pod.Spec.Containers[0].Command {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	t.Fatalf("%s has no --%s", manifest, name)
	return ""
}

func pool(t *testing.T, f *hostpreptest.Host, file string) *x509.CertPool {
	t.Helper()
	b, err := f.Files.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatalf("%s holds no certificate", file)
	}
	return p
}

func keyPair(t *testing.T, f *hostpreptest.Host, base string) tls.Certificate {
	t.Helper()
	c, _ := f.Files.ReadFile(path.Join(hostprep.PKIDir, base+".crt"))
	k, _ := f.Files.ReadFile(path.Join(hostprep.PKIDir, base+".key"))
	kp, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatalf("%s: %v", base, err)
	}
	return kp
}

// handshake runs a TLS handshake on loopback between a server that requires
// a client certificate from clientCAs and a client presenting cert, and
// returns the server's verdict (or the client's, when the server accepts).
func handshake(t *testing.T, server tls.Certificate, clientCAs *x509.CertPool, client tls.Certificate, serverName string, roots *x509.CertPool) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		sc, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer sc.Close()
		sc.SetDeadline(time.Now().Add(5 * time.Second))
		s := tls.Server(sc, &tls.Config{Certificates: []tls.Certificate{server}, ClientCAs: clientCAs, ClientAuth: tls.RequireAndVerifyClientCert})
		done <- s.Handshake()
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cc.SetDeadline(time.Now().Add(5 * time.Second))
	cerr := tls.Client(cc, &tls.Config{Certificates: []tls.Certificate{client}, RootCAs: roots, ServerName: serverName}).Handshake()
	if serr := <-done; serr != nil {
		return serr
	}
	return cerr
}

// TestWorkerCannotOpenEtcd renders a master's and a worker's files, then
// checks with real TLS handshakes against the trust bundles the rendered
// manifests name: etcd refuses the worker's kubelet and kube-proxy client
// certificates and accepts the apiserver's etcd client certificate; the
// apiserver accepts the worker's certificates; and the apiserver's kubelet
// CA verifies the worker's kubelet serving certificate for its address; the
// front-proxy trust takes the master's proxy client and none of the worker's.
func TestWorkerCannotOpenEtcd(t *testing.T) {
	master := newNetFake()
	s, ca := fullSpec(t, hostprep.Routed)
	if _, err := (&hostprep.Runner{Only: []string{hostprep.PhasePKI, hostprep.PhaseStaticPods}}).Apply(context.Background(), s, master.Host()); err != nil {
		t.Fatal(err)
	}
	worker := newNetFake()
	w, _ := fullSpec(t, hostprep.Routed)
	w.Self.Master, w.Peers[0].Master = false, true
	now := worker.Probe.F.Now
	var creds [3]*pki.Credential
	for i, spec := range []pki.CertSpec{pki.KubeletClient(w.Self.Name), {CommonName: "system:kube-proxy", Client: true}, pki.KubeletServing(w.Self.Name, w.Self.Address)} {
		c, err := pki.Issue(ca, spec, now)
		if err != nil {
			t.Fatal(err)
		}
		creds[i] = c
	}
	w.PKI = hostprep.PKI{CA: &pki.CA{Cert: ca.Cert, CertPEM: ca.CertPEM}, Kubelet: creds[0], KubeProxy: creds[1], KubeletServing: creds[2]}
	if _, err := (&hostprep.Runner{Only: []string{hostprep.PhasePKI}}).Apply(context.Background(), w, worker.Host()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"etcd/ca.key", "etcd/ca.crt", "front-proxy-ca.key", "front-proxy-client.key", "encryption-config.yaml", "ca.key", "sa.key"} {
		if _, err := worker.Files.ReadFile(path.Join(hostprep.PKIDir, f)); err == nil {
			t.Errorf("worker holds %s", f)
		}
	}

	etcdTrust := pool(t, master, flagOf(t, master, "etcd.yaml", "trusted-ca-file"))
	etcdServer := tls.Certificate(keyPair(t, master, "etcd/server"))
	etcdRoots := pool(t, master, flagOf(t, master, "kube-apiserver.yaml", "etcd-cafile"))
	for _, c := range []string{"kubelet-client", "kube-proxy"} {
		if err := handshake(t, etcdServer, etcdTrust, keyPair(t, worker, c), "localhost", etcdRoots); err == nil {
			t.Errorf("etcd accepted the worker's %s certificate", c)
		}
	}
	if p := pool(t, master, flagOf(t, master, "etcd.yaml", "peer-trusted-ca-file")); handshake(t, etcdServer, p, keyPair(t, worker, "kubelet-client"), "localhost", etcdRoots) == nil {
		t.Error("etcd's peer port accepted the worker's certificate")
	}
	if err := handshake(t, etcdServer, etcdTrust, keyPair(t, master, "apiserver-etcd-client"), "localhost", etcdRoots); err != nil {
		t.Errorf("etcd refused the apiserver: %v", err)
	}

	apiTrust := pool(t, master, flagOf(t, master, "kube-apiserver.yaml", "client-ca-file"))
	apiServer := keyPair(t, master, "apiserver")
	for _, c := range []string{"kubelet-client", "kube-proxy"} {
		if err := handshake(t, apiServer, apiTrust, keyPair(t, worker, c), "kubernetes", pool(t, worker, path.Join(hostprep.PKIDir, "ca.crt"))); err != nil {
			t.Errorf("apiserver refused the worker's %s certificate: %v", c, err)
		}
	}

	// Extension apiservers believe X-Remote-User only from a certificate of the trust the
	// apiserver publishes for its front proxy: the master's proxy client, never a worker's.
	proxyTrust := pool(t, master, flagOf(t, master, "kube-apiserver.yaml", "requestheader-client-ca-file"))
	for _, c := range []string{"kubelet-client", "kube-proxy"} {
		if handshake(t, apiServer, proxyTrust, keyPair(t, worker, c), "kubernetes", pool(t, worker, path.Join(hostprep.PKIDir, "ca.crt"))) == nil {
			t.Errorf("the front-proxy trust accepted the worker's %s certificate", c)
		}
	}
	if err := handshake(t, apiServer, proxyTrust, keyPair(t, master, "front-proxy-client"), "kubernetes", pool(t, master, path.Join(hostprep.PKIDir, "ca.crt"))); err != nil {
		t.Errorf("the front-proxy trust refused the apiserver's proxy client: %v", err)
	}

	// The apiserver dials the kubelet at the node's InternalIP.
	kubeletCA := pool(t, master, flagOf(t, master, "kube-apiserver.yaml", "kubelet-certificate-authority"))
	clientCAs := pool(t, worker, path.Join(hostprep.PKIDir, "ca.crt")) // the kubelet's clientCAFile
	if err := handshake(t, keyPair(t, worker, "kubelet-serving"), clientCAs, keyPair(t, master, "apiserver-kubelet-client"), w.Self.Address.String(), kubeletCA); err != nil {
		t.Errorf("apiserver does not verify the worker's kubelet: %v", err)
	}
	if err := handshake(t, keyPair(t, worker, "kubelet-serving"), clientCAs, keyPair(t, master, "apiserver-kubelet-client"), "172.31.0.99", kubeletCA); err == nil {
		t.Error("kubelet serving certificate valid for an address not its own")
	}
}
