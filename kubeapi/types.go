package kubeapi

// The fields of Kubernetes objects knode reads and writes, with the names
// and JSON tags of k8s.io/api (tests check them against the upstream types).

// ObjectMeta is the part of metadata knode uses.
type ObjectMeta struct {
	Name      string            `json:"name,omitempty"`
	Namespace string            `json:"namespace,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	// ResourceVersion, sent back in a patch, makes it fail with 409
	// Conflict when the object changed since it was read.
	ResourceVersion string `json:"resourceVersion,omitempty"`
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

// NodePatch is a JSON merge patch (application/merge-patch+json) of a
// Node's labels and taints. A merge patch replaces lists whole: Taints must
// hold every taint the Node is to keep.
type NodePatch struct {
	Metadata ObjectMeta     `json:"metadata"`
	Spec     *NodePatchSpec `json:"spec,omitempty"`
}

// NodePatchSpec is the spec part of a NodePatch.
type NodePatchSpec struct {
	Taints []Taint `json:"taints"`
}

// MergePatch is the content type of a JSON merge patch.
const MergePatch = "application/merge-patch+json"

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

// Pod is the part of a Pod `knode check` reads.
type Pod struct {
	Metadata ObjectMeta `json:"metadata"`
	Spec     struct {
		NodeName string `json:"nodeName,omitempty"`
	} `json:"spec"`
	Status struct {
		Phase             string            `json:"phase,omitempty"`
		PodIP             string            `json:"podIP,omitempty"`
		Conditions        []PodCondition    `json:"conditions,omitempty"`
		ContainerStatuses []ContainerStatus `json:"containerStatuses,omitempty"`
	} `json:"status"`
}

// PodCondition is one condition of a Pod's status.
type PodCondition struct {
	Type   string `json:"type"`
	Status string `json:"status"`
}

// ContainerStatus is one container's state.
type ContainerStatus struct {
	Name  string `json:"name"`
	Ready bool   `json:"ready"`
	State struct {
		Waiting *struct {
			Reason  string `json:"reason,omitempty"`
			Message string `json:"message,omitempty"`
		} `json:"waiting,omitempty"`
		Terminated *struct {
			ExitCode int32  `json:"exitCode"`
			Reason   string `json:"reason,omitempty"`
			Message  string `json:"message,omitempty"`
		} `json:"terminated,omitempty"`
	} `json:"state"`
}

// Ready reports the Pod's Ready condition.
func (p Pod) Ready() bool {
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

// Service is the part of a Service `knode check` reads.
type Service struct {
	Metadata ObjectMeta `json:"metadata"`
	Spec     struct {
		ClusterIP string `json:"clusterIP,omitempty"`
	} `json:"spec"`
}

// List is a list of objects of one kind.
type List[T any] struct {
	Items []T `json:"items"`
}
