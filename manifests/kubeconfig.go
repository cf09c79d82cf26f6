package manifests

import "encoding/base64"

// Kubeconfig is a client configuration with embedded credentials.
type Kubeconfig struct {
	Cluster string
	// Server is the apiserver URL, e.g. https://172.31.0.2:6443.
	Server string
	CAPEM  []byte
	User   string
	// CertPEM and KeyPEM are the client credential.
	CertPEM, KeyPEM []byte
}

// KubeconfigFile renders a kubeconfig.
func KubeconfigFile(k Kubeconfig) []byte {
	b64 := base64.StdEncoding.EncodeToString
	ctx := k.User + "@" + k.Cluster
	return yamlDoc(obj{
		{"apiVersion", "v1"},
		{"kind", "Config"},
		{"clusters", []any{obj{
			{"name", k.Cluster},
			{"cluster", obj{{"certificate-authority-data", b64(k.CAPEM)}, {"server", k.Server}}},
		}}},
		{"users", []any{obj{
			{"name", k.User},
			{"user", obj{{"client-certificate-data", b64(k.CertPEM)}, {"client-key-data", b64(k.KeyPEM)}}},
		}}},
		{"contexts", []any{obj{
			{"name", ctx},
			{"context", obj{{"cluster", k.Cluster}, {"user", k.User}}},
		}}},
		{"current-context", ctx},
		{"preferences", obj{}},
	})
}
