package kubeapi

import (
	"encoding/pem"
	"testing"
	"time"

	"knode.dev/knode/pki"
)

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// testPair is a CA-signed client certificate and key (PEM).
func testPair(t *testing.T) (cert, key []byte) {
	t.Helper()
	ca, err := pki.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cred, err := pki.Issue(ca, pki.CertSpec{CommonName: "u", Client: true}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return cred.CertPEM, cred.KeyPEM
}
