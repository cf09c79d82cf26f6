package manifests

import (
	"encoding/json"
	"fmt"
)

// The objects of `knode check`: in a namespace of their own, an echo pod on
// each node (kubectl proxy, a command of the staged kube binary, answering
// /version through the apiserver), a Service in front of them, and one-shot
// client pods (kubectl get --raw /version against a peer, the Service's IP
// or its DNS name) whose exit code is the check's result. Every pod runs
// from the CoreDNS image, which holds no binary: the staged ones are mounted
// as for CoreDNS itself. Rendered as JSON, the apiserver's create body.

// CheckLabel marks every object of a check (and selects its echo pods).
const CheckLabel = "knode.dev/check"

// CheckPort is where echo pods listen.
const CheckPort = 8080

// CheckPod describes one pod of a check.
type CheckPod struct {
	Namespace, Name, Node string
	Image, BinDir         string
	// Target is the client's URL (http://host:port); empty for an echo pod.
	Target string
}

// CheckNamespace renders the check's namespace.
func CheckNamespace(name string) []byte {
	return toJSON(struct {
		typeMeta
		Metadata objectMeta `json:"metadata"`
	}{typeMeta{APIVersion: "v1", Kind: "Namespace"}, objectMeta{Name: name, Labels: map[string]string{CheckLabel: "true"}}})
}

// CheckService renders the Service in front of the echo pods.
func CheckService(namespace, name string) []byte {
	return toJSON(service{
		typeMeta: typeMeta{APIVersion: "v1", Kind: "Service"},
		Metadata: objectMeta{Name: name, Namespace: namespace, Labels: map[string]string{CheckLabel: "true"}},
		Spec: serviceSpec{Ports: []servicePort{{Name: "http", Port: CheckPort, Protocol: "TCP", TargetPort: CheckPort}},
			Selector: map[string]string{CheckLabel: "echo"}},
	})
}

// CheckEchoPod renders an echo pod pinned to its node.
func CheckEchoPod(p CheckPod) []byte {
	args := []string{"proxy", "--address=0.0.0.0", fmt.Sprintf("--port=%d", CheckPort), "--accept-hosts=.*", "--accept-paths=^/version$"}
	pd := checkPod(p, "echo", args)
	pd.Spec.Containers[0].Ports = []containerPort{{ContainerPort: CheckPort, Name: "http", Protocol: "TCP"}}
	pd.Spec.Containers[0].ReadinessProbe = &probe{HTTPGet: &httpGetAction{Path: "/version", Port: CheckPort, Scheme: "HTTP"}, PeriodSeconds: 1}
	return toJSON(pd)
}

// CheckClientPod renders a one-shot client pod: it exits 0 once the target
// answered /version, non-zero with kubectl's error as its termination message.
func CheckClientPod(p CheckPod) []byte {
	pd := checkPod(p, "client", []string{"--server=" + p.Target, "--request-timeout=10s", "get", "--raw", "/version"})
	pd.Spec.RestartPolicy = "Never"
	return toJSON(pd)
}

func checkPod(p CheckPod, role string, kubectlArgs []string) pod {
	m, v := binariesVolume(p.BinDir)
	tmp := volume{Name: "tmp", EmptyDir: &struct{}{}}
	zero := int64(0)
	return pod{
		typeMeta: typeMeta{APIVersion: "v1", Kind: "Pod"},
		Metadata: objectMeta{Name: p.Name, Namespace: p.Namespace, Labels: map[string]string{CheckLabel: role}},
		Spec: podSpec{
			Containers: []container{{
				Name: role, Image: p.Image, ImagePullPolicy: "Never",
				Command: append([]string{PodBinDir + "/kubectl"}, kubectlArgs...),
				// kubectl keeps a cache under $HOME; the image's root is read-only.
				Env:                      []envVar{{Name: "HOME", Value: "/tmp"}},
				TerminationMessagePolicy: "FallbackToLogsOnError",
				VolumeMounts:             []volumeMount{m, {MountPath: "/tmp", Name: "tmp"}},
				SecurityContext:          &securityContext{AllowPrivilegeEscalation: new(false), Capabilities: &capabilities{Drop: []string{"ALL"}}, ReadOnlyRootFilesystem: true},
			}},
			// Pinned to its node through the scheduler (which is checked too),
			// on any node, tainted or not.
			NodeSelector:                  map[string]string{"kubernetes.io/hostname": p.Node},
			Tolerations:                   []toleration{{Operator: "Exists"}},
			TerminationGracePeriodSeconds: &zero,
			Volumes:                       []volume{v, tmp},
		},
	}
}

func toJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Typed objects of strings, numbers, booleans and maps always encode.
		panic(fmt.Sprintf("manifests: render %T: %v", v, err))
	}
	return b
}
