// Package registry is knode's image distribution without a registry: a
// content-addressed image store under the data directory (Store), the import
// of OCI-layout and docker-archive tarballs into it (Import), a read-only
// OCI distribution API over any content Source (Handler), and the node-local
// mirror (Mirror) that containerd asks first for every registry host: it
// serves what this node holds and, on a miss, streams the content from a
// peer that announced it, verifying every digest, over mutual TLS with the
// nodes' cluster certificates.
//
// Every byte crossing an edge is checked against its digest: a blob enters
// the store only after its hash matched, a response body is cut before its
// last byte when the content read does not match its digest, and a peer's
// bytes are hashed as they arrive.
package registry
