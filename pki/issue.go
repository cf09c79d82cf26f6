package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"slices"
	"time"
)

// LeafValidity is the default lifetime of a leaf certificate.
const LeafValidity = 365 * 24 * time.Hour

// Credential is a leaf certificate and its private key, PEM encoded.
type Credential struct {
	CertPEM []byte
	KeyPEM  []byte
}

// CertSpec says whom a leaf certificate names and what it may be used for.
type CertSpec struct {
	CommonName    string
	Organizations []string
	DNSNames      []string
	IPs           []netip.Addr
	// Server and Client select the extended key usages.
	Server, Client bool
	// Validity defaults to LeafValidity.
	Validity time.Duration
}

// KubeletClient is the spec of a node's kubelet client certificate, which
// the apiserver's Node authorizer recognises: CN system:node:<name> in
// group system:nodes.
func KubeletClient(nodeName string) CertSpec {
	return CertSpec{CommonName: "system:node:" + nodeName, Organizations: []string{"system:nodes"}, Client: true}
}

// Issue makes a new ECDSA P-256 key and a certificate for it signed by ca,
// which must hold its key.
func Issue(ca *CA, spec CertSpec, now time.Time) (*Credential, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key for %s: %w", spec.CommonName, err)
	}
	certPEM, err := sign(ca, key.Public(), spec, now)
	if err != nil {
		return nil, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return &Credential{CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// NewCSR makes a key and a certificate signing request for spec. A node
// without the CA key sends the CSR to a master (SignCSR) and keeps the key.
func NewCSR(spec CertSpec) (csrPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key for %s: %w", spec.CommonName, err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: spec.CommonName, Organization: spec.Organizations},
	}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CSR for %s: %w", spec.CommonName, err)
	}
	if keyPEM, err = encodeKey(key); err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), keyPEM, nil
}

// SignCSR signs the public key of a CSR for spec. The signer decides what the
// certificate says: the CSR's own subject must match spec's, so that a node
// cannot obtain another node's identity.
func SignCSR(ca *CA, csrPEM []byte, spec CertSpec, now time.Time) ([]byte, error) {
	b, _ := pem.Decode(csrPEM)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("CSR: no PEM CERTIFICATE REQUEST block")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("CSR for %s: %w", csr.Subject.CommonName, err)
	}
	if csr.Subject.CommonName != spec.CommonName || !slices.Equal(csr.Subject.Organization, spec.Organizations) {
		return nil, fmt.Errorf("CSR asks for %q in %v, not %q in %v", csr.Subject.CommonName, csr.Subject.Organization, spec.CommonName, spec.Organizations)
	}
	return sign(ca, csr.PublicKey, spec, now)
}

// Verify reports why cred is not a valid credential for spec signed by ca
// that stays valid for at least minLeft after now, or nil. Callers reuse a
// credential that verifies instead of issuing a new one.
func Verify(ca *CA, cred *Credential, spec CertSpec, now time.Time, minLeft time.Duration) error {
	cert, err := ParseCert(cred.CertPEM)
	if err != nil {
		return fmt.Errorf("certificate %s: %w", spec.CommonName, err)
	}
	key, err := ParseKey(cred.KeyPEM)
	if err != nil {
		return fmt.Errorf("key %s: %w", spec.CommonName, err)
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		return fmt.Errorf("certificate %s: key does not match", spec.CommonName)
	}
	if err := cert.CheckSignatureFrom(ca.Cert); err != nil {
		return fmt.Errorf("certificate %s: not signed by the cluster CA: %w", spec.CommonName, err)
	}
	if now.Before(cert.NotBefore) || now.Add(minLeft).After(cert.NotAfter) {
		return fmt.Errorf("certificate %s: valid %s to %s, need until %s", spec.CommonName,
			cert.NotBefore.Format(time.RFC3339), cert.NotAfter.Format(time.RFC3339), now.Add(minLeft).Format(time.RFC3339))
	}
	if cert.Subject.CommonName != spec.CommonName || !slices.Equal(cert.Subject.Organization, spec.Organizations) {
		return fmt.Errorf("certificate %s: subject is %q in %v", spec.CommonName, cert.Subject.CommonName, cert.Subject.Organization)
	}
	if !slices.Equal(sortedStrings(cert.DNSNames), sortedStrings(spec.DNSNames)) || !sameIPs(cert.IPAddresses, spec.IPs) {
		return fmt.Errorf("certificate %s: names %v %v differ from %v %v", spec.CommonName, cert.DNSNames, cert.IPAddresses, spec.DNSNames, spec.IPs)
	}
	if !slices.Equal(cert.ExtKeyUsage, extUsage(spec)) {
		return fmt.Errorf("certificate %s: key usage differs", spec.CommonName)
	}
	return nil
}

func sign(ca *CA, pub crypto.PublicKey, spec CertSpec, now time.Time) ([]byte, error) {
	if ca == nil || ca.Key == nil {
		return nil, fmt.Errorf("sign certificate %s: this node does not hold the CA key", spec.CommonName)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial for %s: %w", spec.CommonName, err)
	}
	validity := spec.Validity
	if validity == 0 {
		validity = LeafValidity
	}
	notAfter := now.Add(validity)
	// Back-dated for clocks a little behind the signer's, by at most a
	// tenth of the lifetime so that short test lifetimes keep their shape.
	notBefore := now.Add(-min(5*time.Minute, validity/10))
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: spec.CommonName, Organization: spec.Organizations},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  extUsage(spec),
		DNSNames:     spec.DNSNames,
	}
	for _, ip := range spec.IPs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate %s: %w", spec.CommonName, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func extUsage(spec CertSpec) []x509.ExtKeyUsage {
	var u []x509.ExtKeyUsage
	if spec.Server {
		u = append(u, x509.ExtKeyUsageServerAuth)
	}
	if spec.Client {
		u = append(u, x509.ExtKeyUsageClientAuth)
	}
	return u
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func sortedStrings(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func sameIPs(have []net.IP, want []netip.Addr) bool {
	if len(have) != len(want) {
		return false
	}
	for _, w := range want {
		if !slices.ContainsFunc(have, func(h net.IP) bool { return h.Equal(net.IP(w.AsSlice())) }) {
			return false
		}
	}
	return true
}
