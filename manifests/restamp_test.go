package manifests

import (
	"bytes"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestRestamp(t *testing.T) {
	cp := controlPlane()
	orig := APIServerPod(cp)
	got, err := Restamp(orig, "abc")
	if err != nil {
		t.Fatal(err)
	}
	var p pod
	if err := yaml.UnmarshalStrict(got, &p); err != nil {
		t.Fatal(err)
	}
	if p.Metadata.Annotations[CertsAnnotation] != "abc" {
		t.Fatalf("annotation not set:\n%s", got)
	}
	// Nothing else changes: dropping the annotation gives the original back.
	delete(p.Metadata.Annotations, CertsAnnotation)
	p.Metadata.Annotations = nil
	if back := toYAML(p); !bytes.Equal(back, orig) {
		t.Errorf("restamp changed more than the annotation:\n%s", got)
	}
	again, err := Restamp(got, "def")
	if err != nil || strings.Contains(string(again), "abc") {
		t.Errorf("second restamp: %v\n%s", err, again)
	}
	if _, err := Restamp(append(orig, []byte("extra: 1\n")...), "x"); err == nil {
		t.Error("a manifest with a field knode does not render was accepted")
	}
}
