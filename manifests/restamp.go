package manifests

import (
	"fmt"

	"sigs.k8s.io/yaml"
)

// CertsAnnotation on a static pod names the certificates it was last
// restarted for. The kubelet derives a static pod's identity from its whole
// manifest, so changing the annotation makes it replace the running pod: the
// way to restart a component that does not reload renewed files itself.
const CertsAnnotation = "knode.dev/certs"

// Restamp returns the static pod manifest podYAML (one that knode rendered)
// with CertsAnnotation set to value. It decodes strictly, so a manifest with
// fields knode does not render is an error, not silently trimmed.
func Restamp(podYAML []byte, value string) ([]byte, error) {
	var p pod
	if err := yaml.UnmarshalStrict(podYAML, &p); err != nil {
		return nil, fmt.Errorf("static pod manifest: %w", err)
	}
	if p.Kind != "Pod" || p.Metadata.Name == "" {
		return nil, fmt.Errorf("static pod manifest: kind %q name %q, want a named Pod", p.Kind, p.Metadata.Name)
	}
	if p.Metadata.Annotations == nil {
		p.Metadata.Annotations = map[string]string{}
	}
	p.Metadata.Annotations[CertsAnnotation] = value
	return toYAML(p), nil
}

// StampOf returns the CertsAnnotation of a static pod manifest knode
// rendered, or "" when it has none or does not decode.
func StampOf(podYAML []byte) string {
	var p pod
	if yaml.UnmarshalStrict(podYAML, &p) != nil {
		return ""
	}
	return p.Metadata.Annotations[CertsAnnotation]
}
