//go:build e2e

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/e2e/lab"
)

const securePodYAML = `apiVersion: v1
kind: Pod
metadata: {name: secure-echo, namespace: default}
spec:
  nodeName: %s
  containers:
  - name: echo
    image: ` + echoImage + `
    imagePullPolicy: Never
    args: ["netexec", "--http-port=8080"]
`

// TestScenarioSecurity (issue 10): 1 master + 1 worker.
//   - etcd: the worker's own kubelet credentials are refused by etcd (the host and the
//     worker cannot even reach its ports; on the master's loopback its TLS refuses them),
//     while the apiserver's etcd client certificate is accepted;
//   - the kubelet serves a certificate of the cluster CA for its address, and
//     `kubectl exec` and `logs` work with the apiserver verifying it;
//   - a Secret read straight from etcd is encrypted (secretbox), not plaintext;
//   - the audit log records the Secret's creation, without its value;
//   - admin.conf is revocable: without its ClusterRoleBinding it is forbidden, while
//     super-admin.conf still works;
//   - the aggregation layer works end to end with an aggregated API server, and only the
//     front proxy's certificate makes it believe X-Remote-User (checkAggregatedAPI).
func TestScenarioSecurity(t *testing.T) {
	c := formCluster(t, 2, "--masters", "1")
	ctx := t.Context()
	master, worker := c.nodes[0], c.nodes[1]

	// etcd's ports from a non-member (this host) and from a worker: dropped.
	for _, port := range []string{"2379", "2380"} {
		if conn, err := net.DialTimeout("tcp", net.JoinHostPort(master.IP, port), 2*time.Second); err == nil {
			conn.Close()
			t.Errorf("the lab host reached etcd's port %s on the master", port)
		}
	}
	if out, err := etcdctl(ctx, worker, "https://"+master.IP+":2379", "kubelet-client", "get", "/registry/clusterrolebindings/cluster-admin", "--keys-only"); err == nil {
		t.Errorf("the worker read etcd with its own kubelet credentials:\n%s", out)
	}
	// Past the firewall: the worker's certificates offered to etcd on the master's loopback.
	for _, f := range []string{"kubelet-client.crt", "kubelet-client.key"} {
		out, err := worker.Exec(ctx, "cat", "/etc/kubernetes/pki/"+f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := master.ExecInput(ctx, []byte(out), "sh", "-c", "cat > /etc/kubernetes/pki/worker-"+f); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := master.Exec(ctx, "test", "-s", "/etc/kubernetes/pki/worker-kubelet-client.crt", "-a", "-s", "/etc/kubernetes/pki/worker-kubelet-client.key"); err != nil {
		t.Fatalf("the worker's credentials were not copied to the master: %v\n%s", err, out)
	}
	if out, err := etcdctl(ctx, master, "https://127.0.0.1:2379", "worker-kubelet-client", "get", "/registry/clusterrolebindings/cluster-admin", "--keys-only"); err == nil {
		t.Errorf("etcd accepted the worker's kubelet client certificate:\n%s", out)
	}
	master.Exec(ctx, "rm", "-f", "/etc/kubernetes/pki/worker-kubelet-client.crt", "/etc/kubernetes/pki/worker-kubelet-client.key")
	if out, err := etcdctl(ctx, master, "https://127.0.0.1:2379", "apiserver-etcd-client", "get", "/registry/clusterrolebindings/cluster-admin", "--keys-only"); err != nil {
		t.Errorf("etcd refused the apiserver's client certificate: %v\n%s", err, out)
	}

	// The worker's kubelet serves a certificate of the cluster CA for its address.
	caPEM, err := master.Exec(ctx, "cat", "/etc/kubernetes/pki/ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(caPEM))
	waitFor(t, "the worker's kubelet serving a certificate of the cluster CA", time.Minute, func() (bool, string) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", net.JoinHostPort(worker.IP, "10250"),
			&tls.Config{RootCAs: roots, ServerName: worker.IP})
		if err != nil {
			return false, err.Error()
		}
		conn.Close()
		return true, ""
	})

	// exec and logs through the apiserver, which verifies that certificate.
	importImage(t, []*lab.Node{worker}, echoImageTar(t))
	if out, err := master.ExecInput(ctx, []byte(fmt.Sprintf(securePodYAML, worker.Name)), "knode", "kubectl", "apply", "-f", "-"); err != nil {
		t.Fatalf("apply the pod: %v\n%s", err, out)
	}
	waitFor(t, "pod secure-echo Running on the worker", readyTimeout(), func() (bool, string) {
		out, err := kubectl(ctx, master, "get", "pod", "secure-echo", "-o", "jsonpath={.status.phase}")
		return err == nil && out == "Running", out
	})
	if out, err := kubectl(ctx, master, "exec", "secure-echo", "--", "/agnhost", "connect", "--timeout=5s", "127.0.0.1:8080"); err != nil {
		t.Errorf("kubectl exec on the worker: %v\n%s", err, out)
	}
	waitFor(t, "kubectl logs of the worker's pod", time.Minute, func() (bool, string) {
		out, err := kubectl(ctx, master, "logs", "secure-echo")
		return err == nil && strings.TrimSpace(out) != "", out
	})

	// Encryption at rest.
	const canary = "knode-e2e-plaintext-canary"
	if out, err := kubectl(ctx, master, "create", "secret", "generic", "canary", "--from-literal=value="+canary); err != nil {
		t.Fatalf("create secret: %v\n%s", err, out)
	}
	raw, err := etcdctl(ctx, master, "https://127.0.0.1:2379", "apiserver-etcd-client", "get", "/registry/secrets/default/canary", "--print-value-only")
	if err != nil {
		t.Fatalf("read the Secret from etcd: %v\n%s", err, raw)
	}
	if strings.Contains(raw, canary) || !strings.HasPrefix(raw, "k8s:enc:secretbox:v1:") {
		t.Errorf("Secret stored in etcd as %.60q..., want k8s:enc:secretbox:v1: and no plaintext", raw)
	}
	if out, err := kubectl(ctx, master, "get", "secret", "canary", "-o", "jsonpath={.data.value}"); err != nil || strings.TrimSpace(out) == "" {
		t.Errorf("the apiserver cannot read the encrypted Secret back: %v %s", err, out)
	}

	// The audit log.
	waitFor(t, "the audit log records the Secret's creation", time.Minute, func() (bool, string) {
		log, err := master.Exec(ctx, "cat", "/var/log/kubernetes/audit/audit.log")
		if err != nil {
			return false, err.Error()
		}
		if strings.Contains(log, canary) {
			t.Fatal("the audit log holds the Secret's value")
		}
		for _, l := range strings.Split(log, "\n") {
			if strings.Contains(l, `"verb":"create"`) && strings.Contains(l, `"resource":"secrets"`) && strings.Contains(l, `"name":"canary"`) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d bytes, no create of secrets/canary", len(log))
	})

	// A revocable admin.
	const superAdmin = "/etc/kubernetes/super-admin.conf"
	if out, err := master.Exec(ctx, nodeKubectl, "--kubeconfig", superAdmin, "delete", "clusterrolebinding", "knode:cluster-admins"); err != nil {
		t.Fatalf("delete admin.conf's binding with super-admin.conf: %v\n%s", err, out)
	}
	out, err := master.Exec(ctx, nodeKubectl, "--kubeconfig", adminKubeconfig, "get", "secrets")
	if err == nil || !strings.Contains(out, "forbidden") {
		t.Errorf("admin.conf still works without its binding: %v\n%s", err, out)
	}
	if out, err := master.Exec(ctx, nodeKubectl, "--kubeconfig", superAdmin, "create", "clusterrolebinding", "knode:cluster-admins",
		"--clusterrole", "cluster-admin", "--group", "knode:cluster-admins"); err != nil {
		t.Fatalf("restore admin.conf's binding: %v\n%s", err, out)
	}

	checkAggregatedAPI(t, master, worker)
}
