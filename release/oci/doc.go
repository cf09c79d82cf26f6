// Package oci writes single-layer OCI image-layout tarballs from files on disk, without a
// registry, so that `ctr -n k8s.io images import` makes them available to containerd's CRI
// under their reference with no pull.
//
// Output is deterministic: the same Image and the same file contents give the same bytes
// (fixed modification times, owner root, sorted entries, no compression), so the release
// build can record a tarball's sha256 and knode can rebuild the identical tarball from its
// staged binaries instead of embedding every binary twice.
//
// Names are read by containerd's importer from the index entry's io.containerd.image.name
// annotation (the full reference); org.opencontainers.image.ref.name carries the tag, as
// containerd's own exporter writes it.
package oci
