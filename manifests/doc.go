// Package manifests renders the files knode writes on a node: systemd
// units, the KubeletConfiguration and KubeProxyConfiguration, kubeconfigs,
// the CNI and containerd configurations, and the control plane's static pod
// manifests. Every function is pure: the same input gives the same bytes,
// which golden files under testdata/ pin down.
//
// Each artefact is built from typed structures: small local mirrors of the
// upstream types, rendered with sigs.k8s.io/yaml (YAML through JSON, as
// Kubernetes does) or go-toml (containerd). The tests decode every YAML
// artefact strictly into the upstream types (k8s.io/api, the kubelet's and
// kube-proxy's configuration types, client-go's kubeconfig), which only the
// tests link. Callers pass plain values (paths, addresses, PEM bytes); the
// package imports no other knode package.
package manifests
