package manifests

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCheckObjectsAreUpstreamObjects(t *testing.T) {
	p := CheckPod{Namespace: "knode-check-ab12", Name: "echo-n1", Node: "n1", Image: "knode.local/coredns:v1.14.7", BinDir: "/opt/knode/bin"}
	var echo, client corev1.Pod
	var ns corev1.Namespace
	var svc corev1.Service
	for _, tc := range []struct {
		doc []byte
		out any
		tm  metav1.TypeMeta
	}{
		{CheckNamespace("knode-check-ab12"), &ns, meta("v1", "Namespace")},
		{CheckService("knode-check-ab12", "echo"), &svc, meta("v1", "Service")},
		{CheckEchoPod(p), &echo, meta("v1", "Pod")},
		{CheckClientPod(CheckPod{Namespace: p.Namespace, Name: "c", Node: "n2", Image: p.Image, BinDir: p.BinDir, Target: "http://10.10.1.5:8080"}), &client, meta("v1", "Pod")},
	} {
		if err := decodeStrict(tc.doc, tc.out, tc.tm); err != nil {
			t.Fatalf("%s: %v", tc.doc, err)
		}
	}
	c := echo.Spec.Containers[0]
	if echo.Spec.NodeSelector["kubernetes.io/hostname"] != "n1" || c.Command[0] != "/usr/local/bin/kubectl" || c.Command[1] != "proxy" ||
		c.ReadinessProbe.HTTPGet.Port.IntValue() != CheckPort || echo.Labels[CheckLabel] != "echo" || *echo.Spec.TerminationGracePeriodSeconds != 0 {
		t.Errorf("echo pod: %+v", echo.Spec)
	}
	if client.Spec.RestartPolicy != corev1.RestartPolicyNever || client.Spec.Containers[0].TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError ||
		client.Spec.Containers[0].Command[1] != "--server=http://10.10.1.5:8080" || client.Spec.Volumes[1].EmptyDir == nil {
		t.Errorf("client pod: %+v", client.Spec)
	}
	if svc.Spec.Selector[CheckLabel] != "echo" || svc.Spec.Ports[0].TargetPort.IntValue() != CheckPort {
		t.Errorf("service: %+v", svc.Spec)
	}
}
