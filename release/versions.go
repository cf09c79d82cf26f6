package release

// Pinned versions; versions.env is the source, versions_test.go checks these against it.
const (
	Kubernetes          = "v1.36.3"
	KubernetesStaging   = "v0.36.3"
	KubernetesBuildDate = "2026-07-22T18:07:38Z"
	Etcd                = "v3.6.16"
	Containerd          = "v2.4.2"
	Runc                = "v1.5.3"
	CNIPlugins          = "v1.10.0"
	CoreDNS             = "v1.14.7"
	Pause               = "3.10.2"
	CRITools            = "v1.37.0" // crictl: the newest cri-tools the module proxy serves (v1.36 is not)
)

// Image references of the images knode assembles. Pause uses containerd's default sandbox
// image name, so containerd needs no configuration to find it; the others are knode's own.
const (
	PauseImage        = "registry.k8s.io/pause:" + Pause
	ControlPlaneImage = "knode.local/control-plane:" + Kubernetes
	CoreDNSImage      = "knode.local/coredns:" + CoreDNS
)
