package assets

import (
	"path/filepath"
)

// Staged is a payload staged under a data directory.
type Staged struct {
	// Dir is the data directory.
	Dir string
	// Manifest is the staged payload's manifest.
	Manifest Manifest
	// Written counts the files, links and images this Stage call wrote; 0 when everything
	// was already staged.
	Written int
}

// Path returns the absolute path of a staged program ("kubelet", "ctr", "etcd") or file
// ("kube", "cni-bridge"), or "" when the payload has neither.
func (s Staged) Path(name string) string {
	if p, ok := s.Manifest.Program(name); ok {
		return s.abs(p.Path)
	}
	if f, ok := s.Manifest.File(name); ok {
		return s.abs(f.Path)
	}
	return ""
}

// BinDir is the directory holding the staged programs (for PATH).
func (s Staged) BinDir() string { return filepath.Join(s.Dir, "bin") }

// CNIBinDir is the directory holding the CNI plugins (containerd's CNI bin_dir).
func (s Staged) CNIBinDir() string { return filepath.Join(s.Dir, "bin", "cni") }

// ImagePath returns the absolute path of the named image's tarball ("pause",
// "control-plane", "coredns"), or "" when the payload has no such image.
func (s Staged) ImagePath(name string) string {
	if img, ok := s.Manifest.Image(name); ok {
		return s.abs(img.Path)
	}
	return ""
}

// ImageRef returns the reference the named image is imported under, or "".
func (s Staged) ImageRef(name string) string {
	if img, ok := s.Manifest.Image(name); ok {
		return img.Image.Ref
	}
	return ""
}

func (s Staged) abs(rel string) string { return filepath.Join(s.Dir, filepath.FromSlash(rel)) }
