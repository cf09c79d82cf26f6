package release

import (
	"strings"
	"testing"
)

func TestSpecIsConsistent(t *testing.T) {
	m := Spec(SpecOptions{KnodeVersion: "v0.1.0"})
	// Validate wants sizes and digests, which only the build knows; fill placeholders.
	for i := range m.Files {
		m.Files[i].SHA256 = strings.Repeat("0", 64)
	}
	for i := range m.Blobs {
		m.Blobs[i].Size = 1
	}
	for i := range m.Images {
		m.Images[i].SHA256 = strings.Repeat("0", 64)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Programs {
		if p.VersionWant == "" {
			t.Errorf("program %s has no version check", p.Name)
		}
	}
	for _, name := range []string{"kubelet", "kubectl", "kube-apiserver", "etcd", "containerd", "ctr", "runc", "coredns", "cni-bridge", "crictl", "knode"} {
		if _, ok := m.Program(name); !ok {
			t.Errorf("payload lacks program %s", name)
		}
	}
}
