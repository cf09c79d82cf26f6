package manifests

import (
	"fmt"

	"github.com/pelletier/go-toml/v2"
)

// Containerd configures containerd 2.x for the kubelet.
type Containerd struct {
	// Root and State are containerd's directories.
	Root, State string
	// Socket is the CRI endpoint's path.
	Socket string
	// PauseImage is the sandbox image, imported from the payload.
	PauseImage string
	// SystemdCgroup must match the kubelet's cgroupDriver.
	SystemdCgroup bool
	// RestrictOOMScoreAdj is needed when the node itself runs in a
	// container that may not lower oom_score_adj.
	RestrictOOMScoreAdj bool
	// RuncPath is the runc binary from the payload.
	RuncPath string
	// CNIBinDir and CNIConfDir locate the CNI plugins and configuration.
	CNIBinDir, CNIConfDir string
	// RegistryConfigPath is the directory of containerd's per-registry
	// hosts.toml files (empty: none).
	RegistryConfigPath string
}

// containerdConfig is containerd's config.toml, version 3: the fields knode
// sets, with containerd's own key names.
type containerdConfig struct {
	Version int    `toml:"version"`
	Root    string `toml:"root"`
	State   string `toml:"state"`
	GRPC    struct {
		Address string `toml:"address"`
	} `toml:"grpc"`
	Plugins struct {
		Images  criImages  `toml:"io.containerd.cri.v1.images"`
		Runtime criRuntime `toml:"io.containerd.cri.v1.runtime"`
	} `toml:"plugins"`
}

type criImages struct {
	Snapshotter  string `toml:"snapshotter"`
	PinnedImages struct {
		Sandbox string `toml:"sandbox"`
	} `toml:"pinned_images"`
	Registry struct {
		ConfigPath string `toml:"config_path,omitempty"`
	} `toml:"registry"`
}

type criRuntime struct {
	RestrictOOMScoreAdj bool `toml:"restrict_oom_score_adj"`
	Containerd          struct {
		DefaultRuntimeName string                 `toml:"default_runtime_name"`
		Runtimes           map[string]criRuncSpec `toml:"runtimes"`
	} `toml:"containerd"`
	CNI struct {
		BinDirs []string `toml:"bin_dirs"`
		ConfDir string   `toml:"conf_dir"`
	} `toml:"cni"`
}

type criRuncSpec struct {
	RuntimeType string `toml:"runtime_type"`
	Options     struct {
		BinaryName    string `toml:"BinaryName"`
		SystemdCgroup bool   `toml:"SystemdCgroup"`
	} `toml:"options"`
}

// ContainerdConfig renders /etc/containerd/config.toml (config version 3).
func ContainerdConfig(c Containerd) []byte {
	cfg := containerdConfig{Version: 3, Root: c.Root, State: c.State}
	cfg.GRPC.Address = c.Socket
	cfg.Plugins.Images.Snapshotter = "overlayfs"
	cfg.Plugins.Images.PinnedImages.Sandbox = c.PauseImage
	cfg.Plugins.Images.Registry.ConfigPath = c.RegistryConfigPath
	rt := &cfg.Plugins.Runtime
	rt.RestrictOOMScoreAdj = c.RestrictOOMScoreAdj
	runc := criRuncSpec{RuntimeType: "io.containerd.runc.v2"}
	runc.Options.BinaryName, runc.Options.SystemdCgroup = c.RuncPath, c.SystemdCgroup
	rt.Containerd.DefaultRuntimeName = "runc"
	rt.Containerd.Runtimes = map[string]criRuncSpec{"runc": runc}
	rt.CNI.BinDirs, rt.CNI.ConfDir = []string{c.CNIBinDir}, c.CNIConfDir
	b, err := toml.Marshal(cfg)
	if err != nil {
		panic(fmt.Sprintf("manifests: render containerd config: %v", err)) // strings, ints, bools only
	}
	return append([]byte(OwnHeader), b...)
}

// registryHosts is a hosts.toml of containerd's registry configuration
// directory: the hosts tried, in order, before the registry itself.
type registryHosts struct {
	Host map[string]registryHost `toml:"host"`
}

type registryHost struct {
	Capabilities []string `toml:"capabilities"`
}

// RegistryMirror renders the hosts.toml that makes containerd try mirror
// (a URL such as http://127.0.0.1:6447) first for every registry: placed in
// the _default directory, it applies to each host without its own file.
// The mirror may resolve tags ("resolve"): it answers with the digest the
// cluster recorded. Content it does not hold is a 404, and containerd then
// asks the registry itself.
func RegistryMirror(mirror string) []byte {
	b, err := toml.Marshal(registryHosts{Host: map[string]registryHost{mirror: {Capabilities: []string{"pull", "resolve"}}}})
	if err != nil {
		panic(fmt.Sprintf("manifests: render registry hosts: %v", err)) // strings only
	}
	return append([]byte(OwnHeader), b...)
}
