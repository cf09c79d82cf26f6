package release

import (
	"io/fs"

	"knode.dev/knode/release/manifest"
	"knode.dev/knode/release/oci"
)

// kubePrograms are the Kubernetes commands of the multi-call kube binary.
func kubePrograms() []string {
	return []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl"}
}

// KnodeProgram names knode's own program in the payload: the release's bin/knode is a
// launcher that stages the payload and execs this file (package launch).
const KnodeProgram = "knode"

// PodBinDir is where the payload's images expect the staged binaries: pods mount the node's
// staged bin directory there, read-only, so that images hold no binary of their own (no copy of
// the 150 MB kube binary to assemble, import and store per image) and run exactly the verified
// staged files.
const PodBinDir = "/usr/local/bin"

// PayloadBlob is the payload's one zstd stream, holding every file (see Spec).
const PayloadBlob = "payload.zst"

// KnodeBlob holds knode's own program when it is kept out of PayloadBlob (SpecOptions).
const KnodeBlob = "knode.zst"

// SpecOptions are the parts of the payload that the release pins nowhere else: knode's own
// program, which the build makes from this repository.
type SpecOptions struct {
	// KnodeVersion is the version knode's program reports (`knode version`).
	KnodeVersion string
	// KnodeApart compresses knode's program into a blob of its own (KnodeBlob) instead of
	// at the end of the one stream: a change in knode's code then recompresses 25 MB, not
	// 290 MB (a developer's loop), for a payload about 2 MB larger.
	KnodeApart bool
}

// Spec returns the payload's manifest without the sizes and digests that only the build
// knows: files with their staged paths and blobs, programs, and images. The build writes each
// file at its staged path under one root directory (release/_build/root), so that the images'
// sources resolve the same way there as in knode's data directory.
func Spec(opts SpecOptions) manifest.Manifest {
	m := manifest.Manifest{Schema: manifest.Schema}
	file := func(name, version, path, blob string) {
		m.Files = append(m.Files, manifest.File{Name: name, Version: version, Path: path, Mode: 0o755, Blob: blob})
	}
	// One solid stream: the Go runtime, gRPC, protobuf, client-go and apimachinery that
	// containerd, its shim, runc, the CNI plugins, crictl and the kube binary each link are
	// then stored about once (zstd's long-distance matching across files). The order keeps
	// what shares most near each other within the 256 MiB window: crictl (client-go, CRI)
	// right before kube.
	// knode's own program first: the launcher reaches it alone by decoding 25 MB, not the
	// whole stream (a user other than root extracts only it), and the files after it find
	// the Go runtime, gRPC, protobuf and etcd's client in it. Measured with zstd -19
	// --long=27: 58.11 MB for the stream with knode first, 58.26 MB with knode last.
	knodeBlob := PayloadBlob
	if opts.KnodeApart {
		knodeBlob = KnodeBlob
	}
	file(KnodeProgram, opts.KnodeVersion, "bin/knode", knodeBlob)
	file("containerd", Containerd, "bin/containerd", PayloadBlob)
	file("containerd-shim-runc-v2", Containerd, "bin/containerd-shim-runc-v2", PayloadBlob)
	file("runc", Runc, "bin/runc", PayloadBlob)
	file("pause", Pause, "bin/pause", PayloadBlob)
	for _, plugin := range []string{"bridge", "host-local", "loopback", "portmap"} {
		file("cni-"+plugin, CNIPlugins, "bin/cni/"+plugin, PayloadBlob)
	}
	file("crictl", CRITools, "bin/crictl", PayloadBlob)
	file("kube", Kubernetes, "bin/kube", PayloadBlob)
	m.Blobs = blobsOf(m.Files)

	program := func(p manifest.Program) { m.Programs = append(m.Programs, p) }
	for _, name := range kubePrograms() {
		p := manifest.Program{Name: name, Version: Kubernetes, File: "kube", Path: "bin/" + name,
			VersionArgs: []string{"--version"}, VersionWant: "Kubernetes " + Kubernetes}
		if name == "kubectl" {
			p.VersionArgs, p.VersionWant = []string{"version", "--client"}, "Client Version: "+Kubernetes
		}
		program(p)
	}
	etcd := Etcd[1:] // etcd prints versions without the v
	program(manifest.Program{Name: "etcd", Version: Etcd, File: "kube", Path: "bin/etcd",
		VersionArgs: []string{"--version"}, VersionWant: "etcd Version: " + etcd})
	program(manifest.Program{Name: "etcdctl", Version: Etcd, File: "kube", Path: "bin/etcdctl",
		VersionArgs: []string{"version"}, VersionWant: "etcdctl version: " + etcd})
	program(manifest.Program{Name: "etcdutl", Version: Etcd, File: "kube", Path: "bin/etcdutl",
		VersionArgs: []string{"version"}, VersionWant: "etcdutl version: " + etcd})
	program(manifest.Program{Name: "containerd", Version: Containerd, File: "containerd", Path: "bin/containerd",
		VersionArgs: []string{"--version"}, VersionWant: "containerd github.com/containerd/containerd/v2 " + Containerd})
	program(manifest.Program{Name: "ctr", Version: Containerd, File: "containerd", Path: "bin/ctr",
		VersionArgs: []string{"--version"}, VersionWant: "ctr github.com/containerd/containerd/v2 " + Containerd})
	program(manifest.Program{Name: "containerd-shim-runc-v2", Version: Containerd, File: "containerd-shim-runc-v2",
		Path: "bin/containerd-shim-runc-v2", VersionArgs: []string{"-v"}, VersionWant: "Version:  " + Containerd})
	program(manifest.Program{Name: "runc", Version: Runc, File: "runc", Path: "bin/runc",
		VersionArgs: []string{"--version"}, VersionWant: "runc version " + Runc[1:]})
	for _, plugin := range []string{"bridge", "host-local", "loopback", "portmap"} {
		// Run without CNI_COMMAND, a plugin prints its name and version.
		program(manifest.Program{Name: "cni-" + plugin, Version: CNIPlugins, File: "cni-" + plugin,
			Path: "bin/cni/" + plugin, VersionWant: "plugin " + CNIPlugins})
	}
	program(manifest.Program{Name: "coredns", Version: CoreDNS, File: "kube", Path: "bin/coredns",
		VersionArgs: []string{"-version"}, VersionWant: "CoreDNS-" + CoreDNS[1:]})
	program(manifest.Program{Name: "crictl", Version: CRITools, File: "crictl", Path: "bin/crictl",
		VersionArgs: []string{"--version"}, VersionWant: "crictl version " + CRITools})
	program(manifest.Program{Name: KnodeProgram, Version: opts.KnodeVersion, File: KnodeProgram, Path: "bin/knode",
		VersionArgs: []string{"version"}, VersionWant: "knode " + opts.KnodeVersion + " "})
	program(manifest.Program{Name: "pause", Version: Pause, File: "pause", Path: "bin/pause",
		VersionArgs: []string{"--version"}, VersionWant: "pause " + Pause})

	m.Images = []manifest.Image{
		{Name: "pause", Path: "images/pause.tar", Image: pauseImage()},
		{Name: "control-plane", Path: "images/control-plane.tar", Image: controlPlaneImage()},
		{Name: "coredns", Path: "images/coredns.tar", Image: coreDNSImage()},
	}
	return m
}

// blobsOf groups files into their blobs, in order of first appearance.
func blobsOf(files []manifest.File) []manifest.Blob {
	var blobs []manifest.Blob
	index := map[string]int{}
	for _, f := range files {
		i, ok := index[f.Blob]
		if !ok {
			i = len(blobs)
			index[f.Blob] = i
			blobs = append(blobs, manifest.Blob{Name: f.Blob})
		}
		blobs[i].Files = append(blobs[i].Files, f.Name)
	}
	return blobs
}

// pauseImage is the pod sandbox image: the static pause program at /pause, as upstream's.
func pauseImage() oci.Image {
	return oci.Image{
		Ref:        PauseImage,
		Entrypoint: []string{"/pause"},
		Files:      []oci.File{{Path: "pause", Mode: 0o755, Source: "bin/pause"}},
	}
}

// controlPlaneImage runs the static pods of etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler from the node's staged binaries, mounted at PodBinDir (their manifests give
// the command, e.g. ["kube-apiserver", "--flag", ...]; PATH finds it).
func controlPlaneImage() oci.Image {
	return oci.Image{
		Ref:        ControlPlaneImage,
		Env:        []string{"PATH=" + PodBinDir + ":/usr/bin:/bin"},
		Cmd:        []string{PodBinDir + "/kube"},
		WorkingDir: "/",
		Files: []oci.File{
			{Path: "tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
			{Path: "usr/local/bin", Mode: fs.ModeDir | 0o755},
			{Path: "var/lib/etcd", Mode: fs.ModeDir | 0o700},
		},
	}
}

// coreDNSImage runs CoreDNS (a command of the kube binary) from the node's staged binaries,
// mounted at PodBinDir; upstream's Deployment arguments (-conf /etc/coredns/Corefile) apply
// unchanged.
func coreDNSImage() oci.Image {
	return oci.Image{
		Ref:        CoreDNSImage,
		Entrypoint: []string{PodBinDir + "/coredns"},
		Files: []oci.File{
			{Path: "tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
			{Path: "usr/local/bin", Mode: fs.ModeDir | 0o755},
		},
	}
}
