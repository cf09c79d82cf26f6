package kubeapi

// The fields of Kubernetes objects knode reads and writes, with the names
// and JSON tags of k8s.io/api (tests check them against the upstream types).

// ObjectMeta is the part of metadata knode uses.
type ObjectMeta struct {
	Name      string            `json:"name,omitempty"`
	Namespace string            `json:"namespace,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// Taint is a node taint.
type Taint struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Effect string `json:"effect"`
}

// NodeCondition is one condition of a Node's status.
type NodeCondition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// NodeSystemInfo is what the kubelet reports about its node.
type NodeSystemInfo struct {
	KubeletVersion          string `json:"kubeletVersion,omitempty"`
	ContainerRuntimeVersion string `json:"containerRuntimeVersion,omitempty"`
}

// Node is a Node object.
type Node struct {
	Metadata ObjectMeta `json:"metadata"`
	Spec     struct {
		PodCIDR  string   `json:"podCIDR,omitempty"`
		PodCIDRs []string `json:"podCIDRs,omitempty"`
		Taints   []Taint  `json:"taints,omitempty"`
	} `json:"spec"`
	Status struct {
		Conditions []NodeCondition `json:"conditions,omitempty"`
		NodeInfo   NodeSystemInfo  `json:"nodeInfo"`
	} `json:"status"`
}

// Ready reports the Node's Ready condition, and when it is not True, why.
func (n Node) Ready() (bool, string) {
	for _, c := range n.Status.Conditions {
		if c.Type == "Ready" {
			if c.Status == "True" {
				return true, ""
			}
			why := "Ready=" + c.Status
			if c.Reason != "" {
				why += " (" + c.Reason + ")"
			}
			return false, why
		}
	}
	return false, "no Ready condition yet"
}
