package lab

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// EchoPaths asks for each pod on another node, the Service and its name, from every pod, and
// reports each path that failed.
func TestEchoPaths(t *testing.T) {
	pods := []EchoPod{{"a", "n1", "10.10.0.2"}, {"b", "n2", "10.10.1.2"}, {"c", "n2", "10.10.1.3"}}
	var asked []string
	errs := EchoPaths(pods, "10.0.0.20", func(from EchoPod, target string) error {
		asked = append(asked, from.Name+">"+target)
		if from.Name == "b" && target == "10.0.0.20:80" {
			return errors.New("timeout")
		}
		return nil
	})
	want := []string{
		"a>10.10.1.2:8080", "a>10.10.1.3:8080", "a>10.0.0.20:80", "a>echo.default.svc.cluster.local:80",
		"b>10.10.0.2:8080", "b>10.0.0.20:80", "b>echo.default.svc.cluster.local:80",
		"c>10.10.0.2:8080", "c>10.0.0.20:80", "c>echo.default.svc.cluster.local:80",
	}
	if !slices.Equal(asked, want) {
		t.Errorf("asked %q, want %q", asked, want)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "pod on n2 cannot reach Service IP 10.0.0.20: timeout") {
		t.Errorf("errors %v, want the one failed path", errs)
	}
}
