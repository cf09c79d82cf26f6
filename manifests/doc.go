// Package manifests renders the files knode writes on a node: systemd
// units, the KubeletConfiguration and KubeProxyConfiguration, kubeconfigs,
// the CNI and containerd configurations, and the control plane's static pod
// manifests. Every function is pure: the same input gives the same bytes,
// which golden files under testdata/ pin down.
//
// The package depends on the standard library only; callers pass plain
// values (paths, addresses, PEM bytes).
package manifests
