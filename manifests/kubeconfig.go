package manifests

import (
	"fmt"

	"sigs.k8s.io/yaml"
)

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

// kubeconfig mirrors k8s.io/client-go/tools/clientcmd/api/v1.Config; byte
// slices encode as base64, as the *-data fields hold them.
type kubeconfig struct {
	typeMeta
	Clusters       []namedCluster `json:"clusters"`
	Users          []namedUser    `json:"users"`
	Contexts       []namedContext `json:"contexts"`
	CurrentContext string         `json:"current-context"`
	Preferences    struct{}       `json:"preferences"`
}

type namedCluster struct {
	Name    string `json:"name"`
	Cluster struct {
		CAData []byte `json:"certificate-authority-data"`
		Server string `json:"server"`
	} `json:"cluster"`
}

type namedUser struct {
	Name string `json:"name"`
	User struct {
		CertData []byte `json:"client-certificate-data"`
		KeyData  []byte `json:"client-key-data"`
	} `json:"user"`
}

type namedContext struct {
	Name    string `json:"name"`
	Context struct {
		Cluster string `json:"cluster"`
		User    string `json:"user"`
	} `json:"context"`
}

// KubeconfigFile renders a kubeconfig.
func KubeconfigFile(k Kubeconfig) []byte {
	var cl namedCluster
	cl.Name, cl.Cluster.CAData, cl.Cluster.Server = k.Cluster, k.CAPEM, k.Server
	var u namedUser
	u.Name, u.User.CertData, u.User.KeyData = k.User, k.CertPEM, k.KeyPEM
	var ctx namedContext
	ctx.Name, ctx.Context.Cluster, ctx.Context.User = k.User+"@"+k.Cluster, k.Cluster, k.User
	return toYAML(kubeconfig{
		typeMeta:       typeMeta{APIVersion: "v1", Kind: "Config"},
		Clusters:       []namedCluster{cl},
		Users:          []namedUser{u},
		Contexts:       []namedContext{ctx},
		CurrentContext: ctx.Name,
	})
}

// ParseKubeconfig reads back a kubeconfig KubeconfigFile wrote (its first
// cluster and user), strictly: an unknown field is an error.
func ParseKubeconfig(data []byte) (Kubeconfig, error) {
	var kc kubeconfig
	if err := yaml.UnmarshalStrict(data, &kc); err != nil {
		return Kubeconfig{}, fmt.Errorf("kubeconfig: %w", err)
	}
	if len(kc.Clusters) == 0 || len(kc.Users) == 0 {
		return Kubeconfig{}, fmt.Errorf("kubeconfig: no cluster or no user")
	}
	cl, u := kc.Clusters[0], kc.Users[0]
	return Kubeconfig{Cluster: cl.Name, Server: cl.Cluster.Server, CAPEM: cl.Cluster.CAData,
		User: u.Name, CertPEM: u.User.CertData, KeyPEM: u.User.KeyData}, nil
}
