package oci

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// Image describes a single-layer linux/amd64 image.
type Image struct {
	// Ref is the full reference containerd files the image under, for example
	// "registry.k8s.io/pause:3.10.2". It must include a tag.
	Ref        string   `json:"ref"`
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
	// Files are the layer's entries; missing parent directories are added with mode 0755.
	Files []File `json:"files"`
}

// File is one entry of an image's layer.
type File struct {
	// Path inside the image, relative, without a leading slash: "usr/local/bin/kube".
	Path string `json:"path"`
	// Mode holds the permission bits, plus fs.ModeDir or fs.ModeSymlink for those kinds.
	Mode fs.FileMode `json:"mode"`
	// Source names the regular file's content: a path that the Image's source resolves.
	Source string `json:"source,omitempty"`
	// Link is a symlink's target.
	Link string `json:"link,omitempty"`
}

// Tag returns the tag part of the image's reference ("3.10.2" of "registry.k8s.io/pause:3.10.2").
func (img Image) Tag() string {
	last := img.Ref[strings.LastIndex(img.Ref, "/")+1:]
	if i := strings.LastIndex(last, ":"); i >= 0 {
		return last[i+1:]
	}
	return ""
}

// Validate reports the first problem that would make the image unusable or its tarball
// ambiguous.
func (img Image) Validate() error {
	if img.Ref == "" || img.Tag() == "" {
		return fmt.Errorf("image %q: reference needs a repository and a tag", img.Ref)
	}
	seen := map[string]bool{}
	for _, f := range img.Files {
		clean := path.Clean(f.Path)
		if f.Path == "" || clean != f.Path || path.IsAbs(f.Path) || clean == "." || strings.HasPrefix(clean, "../") {
			return fmt.Errorf("image %s: file path %q must be relative and clean", img.Ref, f.Path)
		}
		if seen[f.Path] {
			return fmt.Errorf("image %s: file %q listed twice", img.Ref, f.Path)
		}
		seen[f.Path] = true
		switch {
		case f.Mode&fs.ModeSymlink != 0:
			if f.Link == "" {
				return fmt.Errorf("image %s: symlink %q has no target", img.Ref, f.Path)
			}
		case f.Mode.IsDir():
		case f.Mode.IsRegular():
			if f.Source == "" {
				return fmt.Errorf("image %s: file %q has no source", img.Ref, f.Path)
			}
		default:
			return fmt.Errorf("image %s: file %q has unsupported mode %v", img.Ref, f.Path, f.Mode)
		}
	}
	return nil
}

// entries returns the layer's entries, parents first, with implied parent directories.
func (img Image) entries() []File {
	byPath := map[string]File{}
	for _, f := range img.Files {
		byPath[f.Path] = f
		for dir := path.Dir(f.Path); dir != "."; dir = path.Dir(dir) {
			if _, ok := byPath[dir]; !ok {
				byPath[dir] = File{Path: dir, Mode: fs.ModeDir | 0o755}
			}
		}
	}
	out := make([]File, 0, len(byPath))
	for _, f := range byPath {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}
