package manifests

import (
	"bytes"
	"fmt"

	"sigs.k8s.io/yaml"
)

// toYAML renders v, a typed object of this package, as one YAML document
// through its JSON form, as Kubernetes does: keys sorted, strings quoted
// wherever YAML would read them as something else.
func toYAML(v any) []byte {
	b, err := yaml.Marshal(v)
	if err != nil {
		// The objects hold only strings, numbers, booleans, byte slices and
		// maps with string keys, which always encode.
		panic(fmt.Sprintf("manifests: render %T: %v", v, err))
	}
	return b
}

// joinDocs joins YAML documents into one multi-document stream.
func joinDocs(docs ...[]byte) []byte {
	return bytes.Join(docs, []byte("---\n"))
}
