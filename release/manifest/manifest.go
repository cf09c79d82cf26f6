// Package manifest defines the payload manifest: the JSON document, written by the release
// build next to the compressed payload, that lists every file knode stages, the programs
// those files provide with their versions, and the container images knode assembles from
// the staged files. knode's assets package reads it; the release build writes it.
package manifest

import (
	"encoding/json"
	"fmt"
	"io/fs"

	"knode.dev/knode/release/oci"
)

// Schema is the manifest format version this package reads and writes.
const Schema = 1

// FileName is the manifest's name in the payload directory.
const FileName = "manifest.json"

// Manifest lists the payload. Paths are slash-separated and relative to the data directory
// that knode stages into.
type Manifest struct {
	Schema   int       `json:"schema"`
	Blobs    []Blob    `json:"blobs"`
	Files    []File    `json:"files"`
	Programs []Program `json:"programs"`
	Images   []Image   `json:"images"`
}

// Blob is one member of the payload directory: a single zstd stream that decodes to the
// contents of its files, concatenated in the order listed. Files that share code (the CNI
// plugins; containerd, its shim and runc) share a blob so the compressor sees the repeats.
type Blob struct {
	// Name is the member's name: "kube.zst".
	Name string `json:"name"`
	// Size is the compressed size.
	Size int64 `json:"size"`
	// Files names the files the stream decodes to, in order.
	Files []string `json:"files"`
	// Compressor records how the build compressed it, for the record and for the build's
	// reuse of unchanged blobs.
	Compressor string `json:"compressor,omitempty"`
}

// File is one staged file and the compressed blob it comes from.
type File struct {
	// Name identifies the file: "kube", "containerd", "cni-bridge".
	Name string `json:"name"`
	// Version is the upstream version the file was built from.
	Version string `json:"version"`
	// Path is where it is staged: "bin/kube".
	Path string `json:"path"`
	// Mode is its permission bits: 0755 for programs.
	Mode fs.FileMode `json:"mode"`
	// Blob names the Blob holding it.
	Blob string `json:"blob"`
	// Size and SHA256 (hex) describe the staged, uncompressed file.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Program is a command a staged file provides. A multi-call file provides several, each
// through a symlink named after the program.
type Program struct {
	// Name is the command name: "kubelet".
	Name string `json:"name"`
	// Version is the version it reports: "v1.36.3".
	Version string `json:"version"`
	// File names the File that implements it.
	File string `json:"file"`
	// Path is where the command is staged; when it differs from the File's Path it is a
	// symlink to that file: "bin/kubelet" -> "kube".
	Path string `json:"path"`
	// VersionArgs make the program print its version; VersionWant is a string that output
	// must contain. The release's payload check runs them.
	VersionArgs []string `json:"versionArgs"`
	VersionWant string   `json:"versionWant"`
	// VersionEnv is extra environment for the version command (CNI plugins read
	// CNI_COMMAND=VERSION).
	VersionEnv []string `json:"versionEnv,omitempty"`
}

// Image is an OCI image tarball that knode assembles from staged files (each oci.File's
// Source is a staged path such as "bin/kube"), so that no binary is embedded twice. The build
// writes the same tarball and records its size and sha256, which staging verifies.
type Image struct {
	// Name identifies the image: "pause", "control-plane", "coredns".
	Name string `json:"name"`
	// Path is where the tarball is staged: "images/pause.tar".
	Path string `json:"path"`
	// Size and SHA256 (hex) describe the tarball; Digest is its image manifest's digest.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Digest string `json:"digest"`
	// Image is what the tarball holds, including its reference (Image.Ref).
	Image oci.Image `json:"image"`
}

// Parse decodes and validates a manifest.
func Parse(data []byte) (Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Manifest{}, fmt.Errorf("payload manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// Marshal encodes the manifest as indented JSON.
func (m Manifest) Marshal() ([]byte, error) {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("payload manifest: %w", err)
	}
	return append(data, '\n'), nil
}

// File returns the file called name.
func (m Manifest) File(name string) (File, bool) {
	for _, f := range m.Files {
		if f.Name == name {
			return f, true
		}
	}
	return File{}, false
}

// Blob returns the blob called name.
func (m Manifest) Blob(name string) (Blob, bool) {
	for _, b := range m.Blobs {
		if b.Name == name {
			return b, true
		}
	}
	return Blob{}, false
}

// Program returns the program called name.
func (m Manifest) Program(name string) (Program, bool) {
	for _, p := range m.Programs {
		if p.Name == name {
			return p, true
		}
	}
	return Program{}, false
}

// Image returns the image called name.
func (m Manifest) Image(name string) (Image, bool) {
	for _, img := range m.Images {
		if img.Name == name {
			return img, true
		}
	}
	return Image{}, false
}
