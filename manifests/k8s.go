package manifests

// The Kubernetes objects knode renders, as small local mirrors of the
// upstream API types (k8s.io/api core/v1, apps/v1, rbac/v1): the same JSON
// field names, only the fields knode sets. Linking the upstream packages
// would add about 7 MB to knode; the tests decode every rendered object
// strictly into the upstream types instead, so that a field misspelt here
// fails a test rather than being ignored by the apiserver or the kubelet.

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

type objectMeta struct {
	Name        string            `json:"name,omitempty"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type pod struct {
	typeMeta
	Metadata objectMeta `json:"metadata"`
	Spec     podSpec    `json:"spec"`
}

type podSpec struct {
	Affinity           *affinity           `json:"affinity,omitempty"`
	Containers         []container         `json:"containers"`
	DNSPolicy          string              `json:"dnsPolicy,omitempty"`
	HostNetwork        bool                `json:"hostNetwork,omitempty"`
	NodeSelector       map[string]string   `json:"nodeSelector,omitempty"`
	Priority           *int32              `json:"priority,omitempty"`
	PriorityClassName  string              `json:"priorityClassName,omitempty"`
	SecurityContext    *podSecurityContext `json:"securityContext,omitempty"`
	RestartPolicy      string              `json:"restartPolicy,omitempty"`
	ServiceAccountName string              `json:"serviceAccountName,omitempty"`
	// TerminationGracePeriodSeconds is a pointer: 0 is meaningful.
	TerminationGracePeriodSeconds *int64       `json:"terminationGracePeriodSeconds,omitempty"`
	Tolerations                   []toleration `json:"tolerations,omitempty"`
	Volumes                       []volume     `json:"volumes,omitempty"`
}

type container struct {
	Args            []string         `json:"args,omitempty"`
	Command         []string         `json:"command,omitempty"`
	Env             []envVar         `json:"env,omitempty"`
	Image           string           `json:"image"`
	ImagePullPolicy string           `json:"imagePullPolicy,omitempty"`
	LivenessProbe   *probe           `json:"livenessProbe,omitempty"`
	Name            string           `json:"name"`
	Ports           []containerPort  `json:"ports,omitempty"`
	ReadinessProbe  *probe           `json:"readinessProbe,omitempty"`
	Resources       resources        `json:"resources"`
	SecurityContext *securityContext `json:"securityContext,omitempty"`
	StartupProbe    *probe           `json:"startupProbe,omitempty"`
	// TerminationMessagePolicy FallbackToLogsOnError puts a failed
	// container's last output in its status.
	TerminationMessagePolicy string        `json:"terminationMessagePolicy,omitempty"`
	VolumeMounts             []volumeMount `json:"volumeMounts,omitempty"`
}

type envVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type containerPort struct {
	ContainerPort int    `json:"containerPort"`
	Name          string `json:"name,omitempty"`
	Protocol      string `json:"protocol,omitempty"`
}

// resources are quantities ("100m", "70Mi") by resource name.
type resources struct {
	Limits   map[string]string `json:"limits,omitempty"`
	Requests map[string]string `json:"requests,omitempty"`
}

type probe struct {
	FailureThreshold    int            `json:"failureThreshold,omitempty"`
	HTTPGet             *httpGetAction `json:"httpGet,omitempty"`
	InitialDelaySeconds int            `json:"initialDelaySeconds,omitempty"`
	PeriodSeconds       int            `json:"periodSeconds,omitempty"`
	SuccessThreshold    int            `json:"successThreshold,omitempty"`
	TimeoutSeconds      int            `json:"timeoutSeconds,omitempty"`
}

type httpGetAction struct {
	Host   string `json:"host,omitempty"`
	Path   string `json:"path"`
	Port   int    `json:"port"`
	Scheme string `json:"scheme"`
}

type securityContext struct {
	AllowPrivilegeEscalation *bool         `json:"allowPrivilegeEscalation,omitempty"`
	Capabilities             *capabilities `json:"capabilities,omitempty"`
	ReadOnlyRootFilesystem   bool          `json:"readOnlyRootFilesystem,omitempty"`
}

type capabilities struct {
	Add  []string `json:"add,omitempty"`
	Drop []string `json:"drop,omitempty"`
}

type podSecurityContext struct {
	SeccompProfile *seccompProfile `json:"seccompProfile,omitempty"`
}

type seccompProfile struct {
	Type string `json:"type"`
}

type volumeMount struct {
	MountPath string `json:"mountPath"`
	Name      string `json:"name"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
}

type volume struct {
	ConfigMap *configMapVolume `json:"configMap,omitempty"`
	EmptyDir  *struct{}        `json:"emptyDir,omitempty"`
	HostPath  *hostPathVolume  `json:"hostPath,omitempty"`
	Name      string           `json:"name"`
}

type hostPathVolume struct {
	Path string `json:"path"`
	Type string `json:"type,omitempty"`
}

type configMapVolume struct {
	Items []keyToPath `json:"items,omitempty"`
	Name  string      `json:"name"`
}

type keyToPath struct {
	Key  string `json:"key"`
	Path string `json:"path"`
}

type toleration struct {
	Effect   string `json:"effect,omitempty"`
	Key      string `json:"key,omitempty"`
	Operator string `json:"operator,omitempty"`
}

type affinity struct {
	PodAntiAffinity *podAntiAffinity `json:"podAntiAffinity,omitempty"`
}

type podAntiAffinity struct {
	Preferred []weightedPodAffinityTerm `json:"preferredDuringSchedulingIgnoredDuringExecution,omitempty"`
}

type weightedPodAffinityTerm struct {
	PodAffinityTerm podAffinityTerm `json:"podAffinityTerm"`
	Weight          int             `json:"weight"`
}

type podAffinityTerm struct {
	LabelSelector *labelSelector `json:"labelSelector,omitempty"`
	TopologyKey   string         `json:"topologyKey"`
}

type labelSelector struct {
	MatchExpressions []labelSelectorRequirement `json:"matchExpressions,omitempty"`
	MatchLabels      map[string]string          `json:"matchLabels,omitempty"`
}

type labelSelectorRequirement struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

type deployment struct {
	typeMeta
	Metadata objectMeta     `json:"metadata"`
	Spec     deploymentSpec `json:"spec"`
}

type deploymentSpec struct {
	Replicas int                `json:"replicas"`
	Selector labelSelector      `json:"selector"`
	Strategy deploymentStrategy `json:"strategy"`
	Template podTemplate        `json:"template"`
}

type deploymentStrategy struct {
	RollingUpdate *rollingUpdate `json:"rollingUpdate,omitempty"`
	Type          string         `json:"type"`
}

type rollingUpdate struct {
	MaxUnavailable int `json:"maxUnavailable"`
}

type podTemplate struct {
	Metadata objectMeta `json:"metadata"`
	Spec     podSpec    `json:"spec"`
}

type service struct {
	typeMeta
	Metadata objectMeta  `json:"metadata"`
	Spec     serviceSpec `json:"spec"`
}

type serviceSpec struct {
	ClusterIP string            `json:"clusterIP,omitempty"`
	Ports     []servicePort     `json:"ports"`
	Selector  map[string]string `json:"selector,omitempty"`
}

type servicePort struct {
	Name       string `json:"name,omitempty"`
	Port       int    `json:"port"`
	Protocol   string `json:"protocol,omitempty"`
	TargetPort int    `json:"targetPort,omitempty"`
}

type configMap struct {
	typeMeta
	Metadata objectMeta        `json:"metadata"`
	Data     map[string]string `json:"data"`
}

type serviceAccount struct {
	typeMeta
	Metadata objectMeta `json:"metadata"`
}

type clusterRole struct {
	typeMeta
	Metadata objectMeta   `json:"metadata"`
	Rules    []policyRule `json:"rules"`
}

type policyRule struct {
	APIGroups []string `json:"apiGroups"`
	Resources []string `json:"resources"`
	Verbs     []string `json:"verbs"`
}

type clusterRoleBinding struct {
	typeMeta
	Metadata objectMeta `json:"metadata"`
	RoleRef  roleRef    `json:"roleRef"`
	Subjects []subject  `json:"subjects"`
}

type roleRef struct {
	APIGroup string `json:"apiGroup"`
	Kind     string `json:"kind"`
	Name     string `json:"name"`
}

type subject struct {
	Kind      string `json:"kind"`
	APIGroup  string `json:"apiGroup,omitempty"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}
