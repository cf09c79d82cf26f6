package manifests

import (
	"reflect"
	"testing"
)

func TestParseKubeconfigRoundTrip(t *testing.T) {
	want := Kubeconfig{Cluster: "demo", Server: "https://127.0.0.1:6444", CAPEM: []byte("ca"), User: "u", CertPEM: []byte("c"), KeyPEM: []byte("k")}
	got, err := ParseKubeconfig(KubeconfigFile(want))
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseKubeconfig = %+v, %v; want %+v", got, err, want)
	}
	for _, bad := range []string{"clusters: []\nusers: []\n", "unknown: 1\n", "{"} {
		if _, err := ParseKubeconfig([]byte(bad)); err == nil {
			t.Errorf("ParseKubeconfig(%q) accepted", bad)
		}
	}
}
