package manifest

import (
	"encoding/hex"
	"fmt"
	"path"
	"strings"
)

// Validate checks that the manifest is complete and consistent: known schema, unique names
// and paths, clean relative paths, well-formed digests, programs and image sources that name
// staged files.
func (m Manifest) Validate() error {
	if m.Schema != Schema {
		return fmt.Errorf("payload manifest: schema %d, this knode reads schema %d", m.Schema, Schema)
	}
	if len(m.Files) == 0 {
		return fmt.Errorf("payload manifest: no files")
	}
	paths := map[string]string{}
	claim := func(p, owner string) error {
		if err := checkPath(p); err != nil {
			return fmt.Errorf("payload manifest: %s: %w", owner, err)
		}
		if other, ok := paths[p]; ok {
			return fmt.Errorf("payload manifest: %s and %s both stage %s", other, owner, p)
		}
		paths[p] = owner
		return nil
	}
	files := map[string]File{}
	inBlob := map[string]string{}
	seenBlobs := map[string]bool{}
	for _, b := range m.Blobs {
		if b.Name == "" || strings.Contains(b.Name, "/") || b.Name == FileName {
			return fmt.Errorf("payload manifest: blob %q must be a plain name other than %s", b.Name, FileName)
		}
		if seenBlobs[b.Name] {
			return fmt.Errorf("payload manifest: blob %s listed twice", b.Name)
		}
		seenBlobs[b.Name] = true
		if b.Size <= 0 || len(b.Files) == 0 {
			return fmt.Errorf("payload manifest: blob %s: size %d, %d files", b.Name, b.Size, len(b.Files))
		}
		for _, name := range b.Files {
			if other, ok := inBlob[name]; ok {
				return fmt.Errorf("payload manifest: file %s is in blobs %s and %s", name, other, b.Name)
			}
			inBlob[name] = b.Name
		}
	}
	for _, f := range m.Files {
		owner := "file " + f.Name
		if f.Name == "" {
			return fmt.Errorf("payload manifest: a file has no name")
		}
		if _, dup := files[f.Name]; dup {
			return fmt.Errorf("payload manifest: file %s listed twice", f.Name)
		}
		files[f.Name] = f
		if err := claim(f.Path, owner); err != nil {
			return err
		}
		if inBlob[f.Name] != f.Blob {
			return fmt.Errorf("payload manifest: %s: blob %q does not list it", owner, f.Blob)
		}
		delete(inBlob, f.Name)
		if err := checkSum(f.SHA256); err != nil {
			return fmt.Errorf("payload manifest: %s: %w", owner, err)
		}
		if f.Size < 0 {
			return fmt.Errorf("payload manifest: %s: negative size", owner)
		}
		if f.Mode&^0o777 != 0 {
			return fmt.Errorf("payload manifest: %s: mode %v is not plain permission bits", owner, f.Mode)
		}
	}
	for name, blob := range inBlob {
		return fmt.Errorf("payload manifest: blob %s lists unknown file %s", blob, name)
	}
	programs := map[string]bool{}
	for _, p := range m.Programs {
		owner := "program " + p.Name
		if p.Name == "" || programs[p.Name] {
			return fmt.Errorf("payload manifest: program %q has no name or is listed twice", p.Name)
		}
		programs[p.Name] = true
		f, ok := files[p.File]
		if !ok {
			return fmt.Errorf("payload manifest: %s: unknown file %q", owner, p.File)
		}
		if p.Path != f.Path {
			if err := claim(p.Path, owner); err != nil {
				return err
			}
			if path.Dir(p.Path) != path.Dir(f.Path) {
				return fmt.Errorf("payload manifest: %s: link %s must sit next to %s", owner, p.Path, f.Path)
			}
		}
	}
	images := map[string]bool{}
	for _, img := range m.Images {
		owner := "image " + img.Name
		if img.Name == "" || images[img.Name] {
			return fmt.Errorf("payload manifest: image %q has no name or is listed twice", img.Name)
		}
		images[img.Name] = true
		if err := claim(img.Path, owner); err != nil {
			return err
		}
		if err := checkSum(img.SHA256); err != nil {
			return fmt.Errorf("payload manifest: %s: %w", owner, err)
		}
		if err := img.Image.Validate(); err != nil {
			return fmt.Errorf("payload manifest: %s: %w", owner, err)
		}
		for _, src := range img.Image.Files {
			if src.Source == "" {
				continue
			}
			if owner, ok := paths[src.Source]; !ok || !strings.HasPrefix(owner, "file ") {
				return fmt.Errorf("payload manifest: image %s: source %s is not a staged file", img.Name, src.Source)
			}
		}
	}
	return nil
}

func checkPath(p string) error {
	if p == "" || path.IsAbs(p) || path.Clean(p) != p || p == "." || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("path %q must be relative and clean", p)
	}
	if strings.HasPrefix(path.Base(p), ".") {
		return fmt.Errorf("path %q: hidden names are reserved for staging", p)
	}
	return nil
}

func checkSum(s string) error {
	if b, err := hex.DecodeString(s); err != nil || len(b) != 32 {
		return fmt.Errorf("sha256 %q is not 64 hex digits", s)
	}
	return nil
}
