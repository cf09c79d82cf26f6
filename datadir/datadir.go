// Package datadir lays out everything a node keeps under its data directory
// (default /var/lib/knode), with 0700 directories and 0600 files, written
// atomically. Every path knode uses derives from one root, so tests simply point
// it at a temporary directory.
//
//	cluster.json   the cluster's identity and CA certificate (public); its
//	               presence marks an initialised node and is written last
//	token          the worker join token init printed (init's node only; secret)
//	master-token   the master join token init printed (init's node only; secret)
//	node.json      this node's identity: name, addresses, X25519 key, join time
//	state.json     last known replicated state, to come back with after restart
//	secrets/       CA key and service-account keys (masters only)
//	creds/         this node's kubelet and kube-proxy client credentials
//	knode.sock     the local agent's API (status)
//	registry/      the node's container images (package registry)
package datadir

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"knode.dev/knode/internal/atomicfile"
)

// Dir is a node's data directory.
type Dir struct{ Root string }

// Names of the files in a data directory.
const (
	ClusterFile = "cluster.json"
	TokenFile   = "token"
	// MasterTokenFile is init's master token (init's node only).
	MasterTokenFile = "master-token"
	NodeFile        = "node.json"
	StateFile       = "state.bin" // the replicated records, in gossip's wire form
	SecretsDir      = "secrets"
	CredsDir        = "creds" // this node's client certificates, signed by a master
	SocketFile      = "knode.sock"
	// SnapshotsDir holds a master's etcd snapshots; `reset --keep-data`
	// keeps them.
	SnapshotsDir = "snapshots"
	// ImagesDir is the node's image store (package registry); `reset
	// --keep-data` keeps it.
	ImagesDir = "registry"
	// ImagesPort is where the image mirror listens: on 127.0.0.1 for this
	// node's containerd, on the node's address for its peers (TLS).
	ImagesPort = 6447
)

// Path joins elem under the data directory.
func (d Dir) Path(elem ...string) string {
	return filepath.Join(append([]string{d.Root}, elem...)...)
}

// Socket is the path of the agent's unix socket.
func (d Dir) Socket() string { return d.Path(SocketFile) }

// Initialised reports whether init or join completed here.
func (d Dir) Initialised() bool {
	_, err := os.Stat(d.Path(ClusterFile))
	return err == nil
}

// Ensure creates the directory (0700) and its secrets directory.
func (d Dir) Ensure() error {
	for _, p := range []string{d.Root, d.Path(SecretsDir), d.Path(CredsDir)} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", p, err)
		}
		if err := os.Chmod(p, 0o700); err != nil {
			return fmt.Errorf("chmod %s: %w", p, err)
		}
	}
	return nil
}

// WriteFile writes data to name under the data directory atomically and
// durably (atomicfile), mode 0600.
func (d Dir) WriteFile(name string, data []byte) error {
	return atomicfile.Write(d.Path(name), data, 0o600)
}

// ReadFile reads name under the data directory.
func (d Dir) ReadFile(name string) ([]byte, error) {
	return os.ReadFile(d.Path(name))
}

// WriteJSON writes v as indented JSON, atomically, mode 0600.
func (d Dir) WriteJSON(name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	return d.WriteFile(name, append(b, '\n'))
}

// ReadJSON decodes name into v; a missing file is reported as fs.ErrNotExist.
func (d Dir) ReadJSON(name string, v any) error {
	b, err := d.ReadFile(name)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s is corrupt: %w", d.Path(name), err)
	}
	return nil
}

// Exists reports whether name exists under the data directory.
func (d Dir) Exists(name string) bool {
	_, err := os.Stat(d.Path(name))
	return !errors.Is(err, fs.ErrNotExist)
}

// RemoveState deletes everything init or join wrote (cluster, token, node,
// state, secrets, socket) and leaves other content, such as staged components,
// in place. Used when init or join fails, so that it can simply be rerun.
func (d Dir) RemoveState() error {
	var errs []error
	for _, name := range []string{ClusterFile, TokenFile, MasterTokenFile, NodeFile, StateFile, SocketFile, SecretsDir, CredsDir} {
		if err := os.RemoveAll(d.Path(name)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
