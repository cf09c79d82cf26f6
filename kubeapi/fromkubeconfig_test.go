package kubeapi

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/manifests"
	"knode.dev/knode/pki"
)

// FromKubeconfig reads a kubeconfig through manifests.ParseKubeconfig, so
// what it cannot use is an error naming the file and the bad part.
func TestFromKubeconfigRejects(t *testing.T) {
	ca, err := pki.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cred, err := pki.Issue(ca, pki.CertSpec{CommonName: "admin", Client: true}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	good := manifests.Kubeconfig{Cluster: "demo", Server: "https://127.0.0.1:6443", CAPEM: ca.CertPEM,
		User: "admin", CertPEM: cred.CertPEM, KeyPEM: cred.KeyPEM}
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		data []byte
		want string
	}{
		{"plain http", manifests.KubeconfigFile(func() manifests.Kubeconfig { k := good; k.Server = "http://127.0.0.1:8080"; return k }()), `server "http://127.0.0.1:8080" is not https`},
		{"no CA", manifests.KubeconfigFile(func() manifests.Kubeconfig { k := good; k.CAPEM = []byte("junk"); return k }()), "no CA certificate"},
		{"key of another cert", manifests.KubeconfigFile(func() manifests.Kubeconfig { k := good; k.KeyPEM = ca.KeyPEM; return k }()), "client credential:"},
		{"unknown field", append(manifests.KubeconfigFile(good), "extra: 1\n"...), "unknown field"},
		{"no user", []byte("apiVersion: v1\nkind: Config\nclusters: []\n"), "no cluster or no user"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".conf")
			if err := os.WriteFile(p, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := FromKubeconfig(p)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("FromKubeconfig = %v, want an error naming %s and %q", err, p, tt.want)
			}
		})
	}
	p := filepath.Join(dir, "good.conf")
	if err := os.WriteFile(p, manifests.KubeconfigFile(good), 0o600); err != nil {
		t.Fatal(err)
	}
	api, err := FromKubeconfig(p)
	if err != nil || api.server != good.Server {
		t.Fatalf("FromKubeconfig(good) = %+v, %v", api, err)
	}
}
