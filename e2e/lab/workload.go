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
