// Package appended reads and writes a payload appended to a program: the release's
// bin/knode is the launcher program with the payload directory's files after its last byte
// (the kernel loads an ELF file by its program headers and ignores what follows):
//
//	launcher ELF | member 0 | member 1 | ... | index (JSON) | footer
//
// The members are the payload directory's files (manifest.json and the zstd blobs), stored
// as they are; the index names them with their sizes, in order; the footer is the magic
// "KNODEPL1" and the index length as a big-endian uint64. The members end where the index
// begins, so the layout needs no offsets, and appending needs no rebuild of the launcher.
package appended

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"time"
)

// magic opens the footer of an appended payload.
const magic = "KNODEPL1"

// ErrNone is returned, wrapped with the path, when a file carries no appended payload.
var ErrNone = errors.New("no payload appended")

// ErrCorrupt is returned, wrapped, when a footer or index does not describe its file.
var ErrCorrupt = errors.New("appended payload is corrupt")

const (
	footerLen = len(magic) + 8
	// maxIndex bounds the index a reader accepts: a payload has a handful of members.
	maxIndex = 1 << 20
)

// index lists the members of an appended payload, in order.
type index struct {
	Members []member `json:"members"`
}

type member struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// Write writes the payload directory's regular files (manifest.json and the blobs)
// to w, followed by their index and the footer, so that w, written after a launcher
// program, becomes a knode binary that Open reads. Names are sorted (fs.ReadDir), so
// the output is reproducible.
func Write(w io.Writer, payload fs.FS) error {
	entries, err := fs.ReadDir(payload, ".")
	if err != nil {
		return fmt.Errorf("read payload directory: %w", err)
	}
	var idx index
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == "README.md" || e.Name()[0] == '.' {
			continue
		}
		n, err := copyMember(w, payload, e.Name())
		if err != nil {
			return err
		}
		idx.Members = append(idx.Members, member{Name: e.Name(), Size: n})
	}
	data, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	footer := make([]byte, footerLen)
	copy(footer, magic)
	binary.BigEndian.PutUint64(footer[len(magic):], uint64(len(data)))
	if _, err := w.Write(append(data, footer...)); err != nil {
		return fmt.Errorf("write payload index: %w", err)
	}
	return nil
}

func copyMember(w io.Writer, payload fs.FS, name string) (int64, error) {
	f, err := payload.Open(name)
	if err != nil {
		return 0, fmt.Errorf("append payload member %s: %w", name, err)
	}
	defer f.Close()
	n, err := io.Copy(w, f)
	if err != nil {
		return 0, fmt.Errorf("append payload member %s: %w", name, err)
	}
	return n, nil
}

// FS is a payload appended to a program: an fs.FS of its members, read in place.
type FS struct {
	f       *os.File
	modTime time.Time
	members map[string]*io.SectionReader
}

var _ fs.FS = (*FS)(nil)

// Open opens the payload appended to the file at path (a release bin/knode). It returns
// ErrNone, wrapped with the path, when the file carries none, and ErrCorrupt when its
// footer or index do not describe the file.
func Open(path string) (*FS, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open payload of %s: %w", path, err)
	}
	a, err := read(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("payload of %s: %w", path, err)
	}
	return a, nil
}

func read(f *os.File) (*FS, error) {
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := info.Size()
	footer := make([]byte, footerLen)
	if size < int64(footerLen) {
		return nil, ErrNone
	}
	if _, err := f.ReadAt(footer, size-int64(footerLen)); err != nil {
		return nil, err
	}
	if !bytes.Equal(footer[:len(magic)], []byte(magic)) {
		return nil, ErrNone
	}
	idxLen := binary.BigEndian.Uint64(footer[len(magic):])
	if idxLen > maxIndex || int64(idxLen) > size-int64(footerLen) {
		return nil, fmt.Errorf("%w: index of %d bytes", ErrCorrupt, idxLen)
	}
	idxStart := size - int64(footerLen) - int64(idxLen)
	data := make([]byte, idxLen)
	if _, err := f.ReadAt(data, idxStart); err != nil {
		return nil, err
	}
	var idx index
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("%w: index: %w", ErrCorrupt, err)
	}
	var total int64
	for _, m := range idx.Members {
		if m.Size < 0 || m.Size > idxStart-total || !fs.ValidPath(m.Name) || path.Base(m.Name) != m.Name {
			return nil, fmt.Errorf("%w: index member %q of %d bytes", ErrCorrupt, m.Name, m.Size)
		}
		total += m.Size
	}
	a := &FS{f: f, modTime: info.ModTime(), members: map[string]*io.SectionReader{}}
	off := idxStart - total
	for _, m := range idx.Members {
		a.members[m.Name] = io.NewSectionReader(f, off, m.Size)
		off += m.Size
	}
	return a, nil
}

// Open opens a member: "manifest.json" or a blob.
func (a *FS) Open(name string) (fs.File, error) {
	sr, ok := a.members[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &file{SectionReader: io.NewSectionReader(sr, 0, sr.Size()), name: name, modTime: a.modTime}, nil
}

// Close closes the binary.
func (a *FS) Close() error { return a.f.Close() }

// file is an open member.
type file struct {
	*io.SectionReader
	name    string
	modTime time.Time
}

func (m *file) Stat() (fs.FileInfo, error) { return fileInfo{m}, nil }
func (m *file) Close() error               { return nil }

type fileInfo struct{ m *file }

func (i fileInfo) Name() string       { return i.m.name }
func (i fileInfo) Size() int64        { return i.m.Size() }
func (i fileInfo) Mode() fs.FileMode  { return 0o444 }
func (i fileInfo) ModTime() time.Time { return i.m.modTime }
func (i fileInfo) IsDir() bool        { return false }
func (i fileInfo) Sys() any           { return nil }
