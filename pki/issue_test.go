package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func testCA(t *testing.T) *CA {
	t.Helper()
	ca, err := NewCA("demo", testNow)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestIssueAndVerify(t *testing.T) {
	ca := testCA(t)
	spec := CertSpec{CommonName: "kube-apiserver", DNSNames: []string{"kubernetes", "m1"},
		IPs: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("172.31.0.2")}, Server: true}
	cred, err := Issue(ca, spec, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(ca, cred, spec, testNow, 30*24*time.Hour); err != nil {
		t.Fatalf("fresh certificate does not verify: %v", err)
	}
	cert, _ := ParseCert(cred.CertPEM)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool(ca), CurrentTime: testNow, DNSName: "kubernetes"}); err != nil {
		t.Errorf("x509 verify: %v", err)
	}
	for name, tt := range map[string]struct {
		spec CertSpec
		now  time.Time
		ca   *CA
		want string
	}{
		"other names":  {CertSpec{CommonName: "kube-apiserver", DNSNames: []string{"kubernetes"}, Server: true}, testNow, ca, "names"},
		"expiring":     {spec, testNow.Add(LeafValidity - 24*time.Hour), ca, "need until"},
		"other CA":     {spec, testNow, testCA(t), "not signed by the cluster CA"},
		"other usage":  {CertSpec{CommonName: "kube-apiserver", DNSNames: spec.DNSNames, IPs: spec.IPs, Client: true}, testNow, ca, "key usage"},
		"other person": {CertSpec{CommonName: "admin", DNSNames: spec.DNSNames, IPs: spec.IPs, Server: true}, testNow, ca, "subject"},
	} {
		err := Verify(tt.ca, cred, tt.spec, tt.now, 30*24*time.Hour)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tt.want)
		}
	}
}

func pool(ca *CA) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// TestKubeletCSR is the worker path: the node makes a key and CSR, a master
// signs it, and the node's credential names it in system:nodes.
func TestKubeletCSR(t *testing.T) {
	ca := testCA(t)
	spec := KubeletClient("w1")
	csr, key, err := NewCSR(spec)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := SignCSR(ca, csr, spec, testNow)
	if err != nil {
		t.Fatal(err)
	}
	worker := &CA{Cert: ca.Cert, CertPEM: ca.CertPEM}
	if err := Verify(worker, &Credential{CertPEM: certPEM, KeyPEM: key}, spec, testNow, 0); err != nil {
		t.Fatal(err)
	}
	cert, _ := ParseCert(certPEM)
	if cert.Subject.CommonName != "system:node:w1" || cert.Subject.Organization[0] != "system:nodes" {
		t.Errorf("subject %v", cert.Subject)
	}
	if _, err := SignCSR(ca, csr, KubeletClient("w2"), testNow); err == nil {
		t.Error("signed w1's CSR as w2")
	}
	if _, err := Issue(worker, spec, testNow); err == nil || !strings.Contains(err.Error(), "does not hold the CA key") {
		t.Errorf("worker issued: %v", err)
	}
}

func TestLeafNotAfterCA(t *testing.T) {
	ca := testCA(t)
	cred, err := Issue(ca, CertSpec{CommonName: "x", Client: true, Validity: 20 * 365 * 24 * time.Hour}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := ParseCert(cred.CertPEM)
	if cert.NotAfter.After(ca.Cert.NotAfter) {
		t.Errorf("leaf outlives CA: %v > %v", cert.NotAfter, ca.Cert.NotAfter)
	}
}

// TestSignCSRIgnoresRequestedNames: the signer decides a certificate's names;
// a CSR asking for more (another address, the apiserver's name) gets only
// those of the spec.
func TestSignCSRIgnoresRequestedNames(t *testing.T) {
	now := time.Now()
	ca, err := NewCA("demo", now)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	spec := KubeletServing("w1", netip.MustParseAddr("172.31.0.5"))
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: spec.CommonName, Organization: spec.Organizations},
		DNSNames:    []string{"w1", "kubernetes", "m1"},
		IPAddresses: []net.IP{net.ParseIP("172.31.0.5"), net.ParseIP("172.31.0.2")},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := SignCSR(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), spec, now)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ParseCert(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.DNSNames) != 1 || cert.DNSNames[0] != "w1" || len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.ParseIP("172.31.0.5")) {
		t.Errorf("certificate names %v %v, want only w1 and 172.31.0.5", cert.DNSNames, cert.IPAddresses)
	}
	if err := cert.VerifyHostname("172.31.0.2"); err == nil {
		t.Error("certificate valid for another node's address")
	}
}
