package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"knode.dev/knode/hostprep"
	"knode.dev/knode/manifests"
	"knode.dev/knode/pki"
)

func TestListCerts(t *testing.T) {
	root := t.TempDir()
	now := time.Now()
	ca, err := pki.NewCA("demo", now)
	if err != nil {
		t.Fatal(err)
	}
	short, err := pki.Issue(ca, pki.CertSpec{CommonName: "etcd-peer", Server: true, Validity: 48 * time.Hour}, now)
	if err != nil {
		t.Fatal(err)
	}
	kubelet, err := pki.Issue(ca, pki.KubeletClient("n1"), now)
	if err != nil {
		t.Fatal(err)
	}
	write := func(p string, data []byte) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(hostprep.PKIDir+"/ca.crt", ca.CertPEM)
	write(hostprep.PKIDir+"/etcd/peer.crt", short.CertPEM)
	write(hostprep.PKIDir+"/etcd/peer.key", short.KeyPEM)
	write(hostprep.KubeletKubeconfig, manifests.KubeconfigFile(manifests.Kubeconfig{Cluster: "demo", Server: "https://127.0.0.1:6444",
		CAPEM: ca.CertPEM, User: "system:node:n1", CertPEM: kubelet.CertPEM, KeyPEM: kubelet.KeyPEM}))
	certs, err := listCerts(root, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 3 {
		t.Fatalf("%d certificates, want 3: %+v", len(certs), certs)
	}
	if first := certs[0]; first.Path != hostprep.PKIDir+"/etcd/peer.crt" || first.DaysLeft != 1 {
		t.Errorf("soonest first: %+v", first)
	}
	if certs[1].Path != hostprep.KubeletKubeconfig || certs[2].Path != hostprep.PKIDir+"/ca.crt" {
		t.Errorf("order: %s, %s", certs[1].Path, certs[2].Path)
	}
	write(hostprep.AdminKubeconfig, []byte("not: [a kubeconfig"))
	if _, err := listCerts(root, now); err == nil {
		t.Error("an unreadable kubeconfig was skipped silently")
	}
	if certs, err := listCerts(t.TempDir(), now); err != nil || len(certs) != 0 {
		t.Errorf("an empty host: %v %v", certs, err)
	}
}
