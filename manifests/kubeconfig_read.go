package manifests

import (
	"errors"
	"fmt"

	"sigs.k8s.io/yaml"
)

// ParseKubeconfig reads a kubeconfig with embedded credentials (the kind
// knode renders): the current context's cluster and user.
func ParseKubeconfig(data []byte) (Kubeconfig, error) {
	var kc kubeconfig
	if err := yaml.Unmarshal(data, &kc); err != nil {
		return Kubeconfig{}, fmt.Errorf("parse kubeconfig: %w", err)
	}
	if len(kc.Clusters) == 0 || len(kc.Users) == 0 {
		return Kubeconfig{}, errors.New("kubeconfig has no cluster or no user")
	}
	cl, u := kc.Clusters[0], kc.Users[0]
	for _, c := range kc.Contexts {
		if c.Name != kc.CurrentContext {
			continue
		}
		for _, x := range kc.Clusters {
			if x.Name == c.Context.Cluster {
				cl = x
			}
		}
		for _, x := range kc.Users {
			if x.Name == c.Context.User {
				u = x
			}
		}
	}
	return Kubeconfig{Cluster: cl.Name, Server: cl.Cluster.Server, CAPEM: cl.Cluster.CAData,
		User: u.Name, CertPEM: u.User.CertData, KeyPEM: u.User.KeyData}, nil
}
