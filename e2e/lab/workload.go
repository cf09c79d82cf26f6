package lab

import "fmt"

// EchoNodePort is the NodePort of EchoWorkload's echo-nodeport Service.
const EchoNodePort = 30080

// EchoWorkload is the labs' workload (scenario 2 of the container lab, the workload scenario
// of the VM lab): a Deployment of replicas echo pods (EchoRef's `netexec` on 8080), spread one
// per node, a ClusterIP Service echo on port 80 and a NodePort Service echo-nodeport on
// EchoNodePort. pull is the containers' imagePullPolicy: Never where the image is imported on
// every node, IfNotPresent where nodes pull it from a peer that imported it.
func EchoWorkload(replicas int, pull string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: default}
spec:
  replicas: %d
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      tolerations: [{operator: Exists}]
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: echo}}}
      containers:
      - name: echo
        image: %s
        imagePullPolicy: %s
        args: ["netexec", "--http-port=8080"]
        ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  selector: {app: echo}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: echo-nodeport, namespace: default}
spec:
  type: NodePort
  selector: {app: echo}
  ports: [{port: 80, targetPort: 8080, nodePort: %d}]
`, replicas, EchoRef, pull, EchoNodePort)
}

// EchoPod is one Running pod of EchoWorkload, as the paths check needs it.
type EchoPod struct{ Name, Node, IP string }

// EchoPaths checks, from every echo pod, the paths scenario 2 proves: every pod on another node
// (pod to pod across nodes), the Service IP (svcIP, port 80) and the Service by name through
// cluster DNS. connect asks from a pod for a host:port; it returns one error per path that
// failed.
func EchoPaths(pods []EchoPod, svcIP string, connect func(from EchoPod, target string) error) []error {
	var errs []error
	for _, a := range pods {
		for _, b := range pods {
			if a.Node == b.Node {
				continue
			}
			if err := connect(a, b.IP+":8080"); err != nil {
				errs = append(errs, fmt.Errorf("pod on %s cannot reach pod %s on %s: %w", a.Node, b.IP, b.Node, err))
			}
		}
		if err := connect(a, svcIP+":80"); err != nil {
			errs = append(errs, fmt.Errorf("pod on %s cannot reach Service IP %s: %w", a.Node, svcIP, err))
		}
		if err := connect(a, "echo.default.svc.cluster.local:80"); err != nil {
			errs = append(errs, fmt.Errorf("pod on %s cannot reach the Service by name (cluster DNS): %w", a.Node, err))
		}
	}
	return errs
}
