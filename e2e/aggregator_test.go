//go:build e2e

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/e2e/lab"
	"knode.dev/knode/pki"
)

// The aggregated API of checkAggregatedAPI: upstream's sample-apiserver (group
// wardle.example.com) in namespace wardle, behind Service sample-api, and a NodePort through
// which the lab host talks to it directly, past the aggregator.
const (
	wardleNS       = "wardle"
	wardleService  = "sample-api"
	wardleNodePort = "30443"
	flundersPath   = "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders"
	// flunderReader may list flunders (RBAC), so that its requests pass the kube-apiserver
	// and the sample-apiserver's own SubjectAccessReview alike; nobody grants anything to
	// flunderStranger.
	flunderReader   = "e2e-alice"
	flunderStranger = "e2e-bob"
)

// sampleAPIServerYAML registers the sample-apiserver as upstream's aggregator e2e test does
// (test/e2e/apimachinery/aggregator.go): its service account may delegate authentication and
// authorization and read the extension-apiserver-authentication ConfigMap (the front-proxy CA
// and the X-Remote-* header names); its pod runs it beside its own etcd on the worker; the
// APIService pins its serving CA. Its audit log (Metadata level) goes to its stdout.
// Arguments: worker node name, serving cert and key (base64), serving CA (base64).
const sampleAPIServerYAML = `apiVersion: v1
kind: Namespace
metadata: {name: wardle}
---
apiVersion: v1
kind: Secret
metadata: {name: sample-apiserver-serving, namespace: wardle}
data: {tls.crt: %[2]s, tls.key: %[3]s}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: sample-apiserver-audit, namespace: wardle}
data:
  policy.yaml: |
    apiVersion: audit.k8s.io/v1
    kind: Policy
    omitStages: [RequestReceived]
    rules:
    - level: Metadata
      resources: [{group: wardle.example.com}]
    - level: None
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: e2e-sample-apiserver-reader}
rules:
- {apiGroups: [""], resources: [namespaces], verbs: [get, list, watch]}
- {apiGroups: [admissionregistration.k8s.io], resources: ["*"], verbs: [get, list, watch]}
- {apiGroups: [flowcontrol.apiserver.k8s.io], resources: [prioritylevelconfigurations, flowschemas], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-sample-apiserver-reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: e2e-sample-apiserver-reader}
subjects: [{kind: ServiceAccount, name: default, namespace: wardle}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-sample-apiserver-auth-delegator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:auth-delegator"}
subjects: [{kind: ServiceAccount, name: default, namespace: wardle}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: e2e-sample-apiserver-auth-reader, namespace: kube-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: extension-apiserver-authentication-reader}
subjects: [{kind: ServiceAccount, name: default, namespace: wardle}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: e2e-flunder-reader}
rules: [{apiGroups: [wardle.example.com], resources: [flunders], verbs: [get, list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-flunder-reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: e2e-flunder-reader}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: ` + flunderReader + `}]
---
apiVersion: v1
kind: Pod
metadata: {name: sample-apiserver, namespace: wardle, labels: {app: sample-apiserver}}
spec:
  nodeName: %[1]s
  containers:
  - name: sample-apiserver
    image: ` + sampleAPIServerImage + `
    imagePullPolicy: Never
    args: [--etcd-servers=http://127.0.0.1:2379, --secure-port=443,
      --tls-cert-file=/certs/tls.crt, --tls-private-key-file=/certs/tls.key,
      --audit-policy-file=/audit/policy.yaml, --audit-log-path=-, --audit-log-maxage=0, --audit-log-maxbackup=0]
    volumeMounts: [{name: certs, mountPath: /certs, readOnly: true}, {name: audit, mountPath: /audit, readOnly: true}]
    readinessProbe: {httpGet: {scheme: HTTPS, port: 443, path: /readyz}, periodSeconds: 2}
  - name: etcd
    image: ` + sampleAPIServerImage + `
    imagePullPolicy: Never
    command: [/sample-apiserver, etcd, --data-dir=/var/lib/etcd,
      --listen-client-urls=http://127.0.0.1:2379, --advertise-client-urls=http://127.0.0.1:2379,
      --listen-peer-urls=http://127.0.0.1:2380, --initial-advertise-peer-urls=http://127.0.0.1:2380,
      --initial-cluster=default=http://127.0.0.1:2380]
    volumeMounts: [{name: etcd-data, mountPath: /var/lib/etcd}]
  volumes:
  - {name: certs, secret: {secretName: sample-apiserver-serving}}
  - {name: audit, configMap: {name: sample-apiserver-audit}}
  - {name: etcd-data, emptyDir: {}}
---
apiVersion: v1
kind: Service
metadata: {name: sample-api, namespace: wardle}
spec:
  selector: {app: sample-apiserver}
  ports: [{port: 443, targetPort: 443}]
---
apiVersion: v1
kind: Service
metadata: {name: sample-api-nodeport, namespace: wardle}
spec:
  type: NodePort
  selector: {app: sample-apiserver}
  ports: [{port: 443, targetPort: 443, nodePort: ` + wardleNodePort + `}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1alpha1.wardle.example.com}
spec:
  group: wardle.example.com
  version: v1alpha1
  service: {namespace: wardle, name: sample-api, port: 443}
  caBundle: %[4]s
  groupPriorityMinimum: 2000
  versionPriority: 200
`

const flunderYAML = `apiVersion: wardle.example.com/v1alpha1
kind: Flunder
metadata: {name: knode-e2e, namespace: default}
`

// checkAggregatedAPI proves the aggregation layer (front-proxy CA, --requestheader-*,
// --proxy-client-*) end to end: the sample-apiserver, on the worker, registered as an
// APIService, answers kubectl through the master's aggregator, and sees each request as the
// user who made it (its own audit log); talked to directly, it takes X-Remote-User only from
// the master's front-proxy client certificate: with a forged front-proxy certificate the
// request is anonymous, and the worker's own certificate of the cluster CA is served as the
// worker, whatever their headers claim. The worker holds no front-proxy key to do better with.
func checkAggregatedAPI(t *testing.T, master, worker *lab.Node) {
	ctx := t.Context()
	servingCA, err := pki.NewCA("e2e-sample-api", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	host := wardleService + "." + wardleNS + ".svc"
	serving, err := pki.Issue(servingCA, pki.CertSpec{CommonName: host, DNSNames: []string{host}, Server: true}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	importImage(t, []*lab.Node{worker}, imageTar(t, sampleAPIServerImg))
	start := time.Now()
	manifest := fmt.Sprintf(sampleAPIServerYAML, worker.Name, b64(serving.CertPEM), b64(serving.KeyPEM), b64(servingCA.CertPEM))
	if out, err := master.ExecInput(ctx, []byte(manifest), "knode", "kubectl", "apply", "-f", "-"); err != nil {
		t.Fatalf("register the sample-apiserver: %v\n%s", err, out)
	}
	waitFor(t, "APIService v1alpha1.wardle.example.com Available", 3*time.Minute, func() (bool, string) {
		out, err := kubectl(ctx, master, "get", "apiservice", "v1alpha1.wardle.example.com",
			"-o", `jsonpath={.status.conditions[?(@.type=="Available")].status} {.status.conditions[?(@.type=="Available")].message}`)
		return err == nil && strings.HasPrefix(out, "True"), out
	})
	timing(t, "sample-apiserver applied -> APIService Available", time.Since(start))

	// Through the aggregator, as the admin and as another user.
	if out, err := master.ExecInput(ctx, []byte(flunderYAML), "knode", "kubectl", "apply", "-f", "-"); err != nil {
		t.Fatalf("create a flunder through the aggregator: %v\n%s", err, out)
	}
	for _, as := range [][]string{nil, {"--as", flunderReader}} {
		out, err := kubectl(ctx, master, append([]string{"get", "flunders", "-n", "default", "-o", "name"}, as...)...)
		if err != nil || !strings.Contains(out, "flunder.wardle.example.com/knode-e2e") {
			t.Errorf("kubectl get flunders %v through the aggregator: %v\n%s", as, err, out)
		}
	}
	// The sample-apiserver's audit log names the users who asked, which it can only have
	// learnt from the front proxy's headers.
	waitFor(t, "the sample-apiserver's audit log naming the requesting users", time.Minute, func() (bool, string) {
		out, err := kubectl(ctx, master, "logs", "-n", wardleNS, "sample-apiserver", "-c", "sample-apiserver")
		if err != nil {
			return false, err.Error()
		}
		admin := seenAs(out, "create", "kubernetes-admin")
		reader := seenAs(out, "list", flunderReader)
		return admin && reader, fmt.Sprintf("create as kubernetes-admin (group knode:cluster-admins): %v, list as %s: %v", admin, flunderReader, reader)
	})

	// Straight to the sample-apiserver (NodePort on the worker), past the aggregator.
	read := func(n *lab.Node, name string) []byte {
		out, err := n.Exec(ctx, "cat", "/etc/kubernetes/pki/"+name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return []byte(out)
	}
	frontProxy, err := tls.X509KeyPair(read(master, "front-proxy-client.crt"), read(master, "front-proxy-client.key"))
	if err != nil {
		t.Fatal(err)
	}
	kubelet, err := tls.X509KeyPair(read(worker, "kubelet-client.crt"), read(worker, "kubelet-client.key"))
	if err != nil {
		t.Fatal(err)
	}
	forgedCA, err := pki.NewFrontProxyCA("forged", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	forgedCred, err := pki.Issue(forgedCA, pki.CertSpec{CommonName: "front-proxy-client", Client: true}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	forged, err := tls.X509KeyPair(forgedCred.CertPEM, forgedCred.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	direct := func(cert *tls.Certificate, user string, groups ...string) (int, string) {
		t.Helper()
		code, body, err := wardleGet(worker.IP, servingCA.CertPEM, cert, user, groups)
		if err != nil {
			t.Fatalf("GET %s on %s:%s: %v", flundersPath, worker.IP, wardleNodePort, err)
		}
		return code, body
	}
	for _, c := range []struct {
		what   string
		cert   *tls.Certificate
		user   string
		groups []string
		code   int
		says   string
	}{
		{"the master's front-proxy client certificate, X-Remote-User " + flunderReader, &frontProxy, flunderReader, nil, 200, "knode-e2e"},
		{"the master's front-proxy client certificate, X-Remote-User " + flunderStranger, &frontProxy, flunderStranger, nil, 403, `User "` + flunderStranger + `"`},
		// A certificate of no trusted CA is no identity at all: the request is anonymous.
		{"a forged front-proxy-client certificate (another CA), X-Remote-User kubernetes-admin, group system:masters", &forged, "kubernetes-admin", []string{"system:masters"}, 403, `User "system:anonymous"`},
		{"the worker's kubelet client certificate, X-Remote-User kubernetes-admin, group system:masters", &kubelet, "kubernetes-admin", []string{"system:masters"}, 403, `User "system:node:` + worker.Name + `"`},
		{"no client certificate, X-Remote-User kubernetes-admin, group system:masters", nil, "kubernetes-admin", []string{"system:masters"}, 403, `User "system:anonymous"`},
	} {
		code, body := direct(c.cert, c.user, c.groups...)
		var st struct {
			Message string `json:"message"`
		}
		if c.code != 200 {
			json.Unmarshal([]byte(body), &st)
			body = st.Message
		}
		if code != c.code || !strings.Contains(body, c.says) {
			t.Errorf("%s: %d %.300s\nwant %d and %q", c.what, code, body, c.code, c.says)
		} else {
			t.Logf("straight to the sample-apiserver with %s: %d %.160s", c.what, code, body)
		}
	}

	// The worker holds neither front-proxy key, under any name, and its own credential gets
	// nothing from the aggregated API.
	var marks []string
	for _, key := range []string{"/etc/kubernetes/pki/front-proxy-client.key", "/var/lib/knode/secrets/front-proxy-ca.key"} {
		pem, err := master.Exec(ctx, "cat", key)
		if lines := strings.Split(pem, "\n"); err != nil || len(lines) < 3 {
			t.Fatalf("%s on the master: %v", key, err)
		} else {
			marks = append(marks, "-e", strings.TrimSpace(lines[1])) // the key's first base64 line
		}
	}
	grep := append(append([]string{"grep", "-rlFs", "-D", "skip"}, marks...), "/etc", "/var/lib/knode", "/var/lib/kubelet", "/root")
	if out, _ := master.Exec(ctx, grep...); !strings.Contains(out, "front-proxy") {
		t.Errorf("the search for front-proxy keys does not even find the master's:\n%s", out)
	}
	if out, _ := worker.Exec(ctx, grep...); strings.TrimSpace(out) != "" {
		t.Errorf("a front-proxy key on the worker:\n%s", out)
	}
	out, err := worker.Exec(ctx, nodeKubectl, "--kubeconfig", "/etc/kubernetes/kubelet.conf", "get", "flunders", "-n", "default")
	if err == nil || !strings.Contains(out, "forbidden") {
		t.Errorf("the worker's kubelet credential listed flunders through the aggregator: %v\n%s", err, out)
	}
}

// seenAs reports whether the audit log (kubectl logs of the sample-apiserver: audit events as
// JSON lines among klog's) has a completed request with verb on flunders by user; the admin's
// events must also carry its group.
func seenAs(log, verb, user string) bool {
	for _, l := range strings.Split(log, "\n") {
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var ev struct {
			Kind  string `json:"kind"`
			Stage string `json:"stage"`
			Verb  string `json:"verb"`
			User  struct {
				Username string   `json:"username"`
				Groups   []string `json:"groups"`
			} `json:"user"`
			ObjectRef struct {
				Resource string `json:"resource"`
			} `json:"objectRef"`
		}
		if json.Unmarshal([]byte(l), &ev) != nil || ev.Kind != "Event" || ev.Stage != "ResponseComplete" {
			continue
		}
		if ev.Verb == verb && ev.ObjectRef.Resource == "flunders" && ev.User.Username == user &&
			(user != "kubernetes-admin" || contains(ev.User.Groups, "knode:cluster-admins")) {
			return true
		}
	}
	return false
}

// wardleGet lists flunders straight from the sample-apiserver's NodePort, verifying its serving
// certificate, presenting cert (none when nil) and the front proxy's identity headers.
func wardleGet(nodeIP string, caPEM []byte, cert *tls.Certificate, user string, groups []string) (int, string, error) {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	cfg := &tls.Config{RootCAs: roots, ServerName: wardleService + "." + wardleNS + ".svc"}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: cfg}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodGet, "https://"+net.JoinHostPort(nodeIP, wardleNodePort)+flundersPath, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("X-Remote-User", user)
	for _, g := range groups {
		req.Header.Add("X-Remote-Group", g)
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
