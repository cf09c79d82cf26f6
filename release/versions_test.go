package release

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readEnv(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("versions.env")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("versions.env: %q is not KEY=VALUE", line)
		}
		env[key] = value
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return env
}

func TestVersionsMatchEnv(t *testing.T) {
	env := readEnv(t)
	want := map[string]string{
		"KUBERNETES_VERSION":         Kubernetes,
		"KUBERNETES_STAGING_VERSION": KubernetesStaging,
		"KUBERNETES_BUILD_DATE":      KubernetesBuildDate,
		"ETCD_VERSION":               Etcd,
		"CONTAINERD_VERSION":         Containerd,
		"RUNC_VERSION":               Runc,
		"CNI_PLUGINS_VERSION":        CNIPlugins,
		"COREDNS_VERSION":            CoreDNS,
		"PAUSE_VERSION":              Pause,
		"CRI_TOOLS_VERSION":          CRITools,
	}
	for key, value := range want {
		if env[key] != value {
			t.Errorf("versions.env %s=%q, versions.go says %q", key, env[key], value)
		}
	}
	if len(env) != len(want) {
		t.Errorf("versions.env has %d keys, versions.go knows %d", len(env), len(want))
	}
}

// The helper modules must build the pinned versions.
func TestHelperModulesRequirePinnedVersions(t *testing.T) {
	requires := map[string][]string{
		"kube": {
			"k8s.io/kubernetes " + Kubernetes,
			"go.etcd.io/etcd/server/v3 " + Etcd,
			"go.etcd.io/etcd/etcdctl/v3 " + Etcd,
			"go.etcd.io/etcd/etcdutl/v3 " + Etcd,
			"k8s.io/client-go => k8s.io/client-go " + KubernetesStaging,
			"github.com/coredns/coredns " + CoreDNS,
		},
		"containerd": {"github.com/containerd/containerd/v2 " + Containerd},
		"runc":       {"github.com/opencontainers/runc " + Runc},
		"cni":        {"github.com/containernetworking/plugins " + CNIPlugins},
		"crictl":     {"sigs.k8s.io/cri-tools " + CRITools},
	}
	for dir, lines := range requires {
		data, err := os.ReadFile(filepath.Join("build", dir, "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range lines {
			found := false
			for _, form := range []string{"\t" + line + "\n", "\t" + line + " // indirect\n", "require " + line + "\n"} {
				found = found || strings.Contains(string(data), form)
			}
			if !found {
				t.Errorf("build/%s/go.mod lacks %q", dir, line)
			}
		}
		if _, err := os.Stat(filepath.Join("build", dir, "go.sum")); err != nil {
			t.Errorf("build/%s: %v (commit go.sum so builds are reproducible)", dir, err)
		}
	}
}

// Every replace line of the kube helper module pins the staging version.
func TestKubeReplacesPinStaging(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("build", "kube", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, " => ") {
			n++
			if !strings.HasSuffix(line, " "+KubernetesStaging) {
				t.Errorf("kube go.mod: %q does not pin %s", strings.TrimSpace(line), KubernetesStaging)
			}
		}
	}
	if n != 33 {
		t.Errorf("kube go.mod has %d replace lines, want the 33 staging modules", n)
	}
}
