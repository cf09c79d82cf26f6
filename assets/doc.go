// Package assets reads knode's payload (the pinned Kubernetes, etcd, containerd, runc, CNI
// and CoreDNS builds made by release/, and knode's own program) and stages it onto the host.
//
// The payload is appended to the release's bin/knode, a small launcher (package launch,
// format in knode.dev/knode/release/appended): zstd streams (the release build makes one,
// holding every file, so that the code the programs share is stored once) plus
// manifest.json (see knode.dev/knode/release/manifest). The launcher stages it and execs the
// staged knode program with $KNODE_LAUNCHER naming the launcher, from which this package
// reads the payload again (Source). A knode built without a payload (`make knode`, plain
// `go build`) still works; ReadManifest and Stage then return ErrNoPayload.
//
// API:
//
//	m, err := assets.ReadManifest()                  // what is embedded, with versions
//	s, err := assets.Stage(ctx, "/var/lib/knode", w) // stage it, progress lines to w
//	s.Path("kubelet")                                // /var/lib/knode/bin/kubelet
//	s.ImagePath("control-plane"), s.ImageRef("control-plane")
//
// Staged layout under the data directory:
//
//	bin/kube                  multi-call Kubernetes + etcd; kube-apiserver,
//	                          kube-controller-manager, kube-scheduler, kubelet, kube-proxy,
//	                          kubectl, etcd, etcdctl and etcdutl are symlinks to it
//	bin/containerd            containerd; bin/ctr is a symlink to it
//	bin/containerd-shim-runc-v2, bin/runc, bin/coredns, bin/pause
//	bin/knode                 knode's own program, which the launcher execs
//	bin/cni/                  bridge, host-local, loopback, portmap
//	images/*.tar              OCI image tarballs for `ctr -n k8s.io images import`
//	.stage.lock, .staged      staging lock and stamp (hidden names are staging's own)
//
// Staging verifies every file's size and sha256 before it becomes visible, writes through a
// temporary file, fsync and rename, and leaves intact files alone, so a second Stage writes
// nothing. Image tarballs are assembled from the staged binaries (nothing is embedded twice)
// and checked against the sha256 the release build recorded. A flock on .stage.lock makes
// concurrent Stage calls, in one process or several, take turns; the holder removes the
// temporary files of a stager that was killed mid-write. When the stamp .staged names the
// embedded manifest and every item has its size, Stage returns after a few stats; otherwise
// it re-hashes what is there and rewrites only what differs. Files of an older payload that
// the current manifest no longer lists are left alone. Staging refuses a data directory (or
// a bin, cni or images directory in it) that is not a real directory owned by this user and
// closed to others' writes: root execs what is staged there.
//
// What the stamp guarantees: that a stager holding the lock decoded every file, matched its
// size and sha256 against the manifest, made it durable, and only then wrote the stamp. It
// does not re-hash on the fast path: a file changed later in place with its size kept is not
// noticed until the stamp is removed; only the directory's owner (root, for root's data
// directory) can change it, which is why the ownership check comes first.
//
// First staging of the full payload takes about 1-2 s and 268 MB of memory (the zstd window
// is 256 MiB); staging an already staged payload takes under a millisecond.
package assets
