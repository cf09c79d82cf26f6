package assets

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"knode.dev/knode/internal/atomicfile"
	"knode.dev/knode/release/manifest"
)

// Names staging keeps for itself in the data directory.
const (
	lockName  = ".stage.lock"
	stampName = ".staged"
)

// StageFS stages the payload held in payload (a directory with manifest.json and the blobs
// it names) under dataDir. Stage calls it with the launcher's payload; tests pass a synthetic
// one.
func StageFS(ctx context.Context, payload fs.FS, dataDir string, progress io.Writer) (Staged, error) {
	m, id, err := readManifest(payload)
	if err != nil {
		return Staged{}, err
	}
	if progress == nil {
		progress = io.Discard
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return Staged{}, fmt.Errorf("create data directory %s: %w", dataDir, err)
	}
	if err := checkOwned(dataDir); err != nil {
		return Staged{}, err
	}
	unlock, err := lock(ctx, filepath.Join(dataDir, lockName))
	if err != nil {
		return Staged{}, err
	}
	defer unlock()

	st := &stager{ctx: ctx, payload: payload, dir: dataDir, progress: progress}
	staged := Staged{Dir: dataDir, Manifest: m}
	st.removeLeftovers(m)
	if st.stamped(id) && st.present(m) {
		fmt.Fprintf(progress, "payload already staged in %s\n", dataDir)
		return staged, nil
	}
	start := time.Now()
	if err := st.stage(m); err != nil {
		return Staged{}, err
	}
	// Every staged file and link is durable by now (atomicfile), so the stamp comes last.
	if err := atomicfile.Write(filepath.Join(dataDir, stampName), []byte(id+"\n"), 0o644); err != nil {
		return Staged{}, err
	}
	staged.Written = st.written
	fmt.Fprintf(progress, "staged payload in %s: %d written, %d already intact, %s\n",
		dataDir, st.written, st.kept, time.Since(start).Round(time.Millisecond))
	return staged, nil
}

// stager carries one staging run's state.
type stager struct {
	ctx      context.Context
	payload  fs.FS
	dir      string
	progress io.Writer
	written  int
	kept     int
}

func (st *stager) abs(rel string) string { return filepath.Join(st.dir, filepath.FromSlash(rel)) }

func (st *stager) stage(m Manifest) error {
	for _, b := range m.Blobs {
		if err := st.ctx.Err(); err != nil {
			return fmt.Errorf("stage %s: %w", b.Name, err)
		}
		if err := st.blob(m, b); err != nil {
			return err
		}
	}
	for _, p := range m.Programs {
		f, _ := m.File(p.File) // Validate guarantees it exists
		if p.Path == f.Path {
			continue
		}
		if err := st.link(p.Path, filepath.Base(f.Path)); err != nil {
			return err
		}
	}
	for _, img := range m.Images {
		if err := st.ctx.Err(); err != nil {
			return fmt.Errorf("stage image %s: %w", img.Name, err)
		}
		if err := st.image(img); err != nil {
			return err
		}
	}
	return nil
}

// removeLeftovers deletes temporary files that a stager killed mid-write left behind. Only
// a stager holding the lock writes them, so under the lock every one is stale.
func (st *stager) removeLeftovers(m Manifest) {
	dirs := map[string]bool{}
	for _, f := range m.Files {
		dirs[filepath.Dir(st.abs(f.Path))] = true
	}
	for _, img := range m.Images {
		dirs[filepath.Dir(st.abs(img.Path))] = true
	}
	for dir := range dirs {
		removeTemps(dir)
	}
}

// removeTemps deletes the temporary files in dir (see removeLeftovers).
func removeTemps(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return // not created yet
	}
	for _, e := range entries {
		if name := e.Name(); atomicfile.IsTemp(name) {
			_ = os.Remove(filepath.Join(dir, name))
		}
	}
}

// stamped reports whether the stamp says this payload was staged completely before.
func (st *stager) stamped(id string) bool {
	data, err := os.ReadFile(filepath.Join(st.dir, stampName))
	return err == nil && string(data) == id+"\n"
}

// present is the cheap check behind the stamp: every staged item still exists with its size.
func (st *stager) present(m Manifest) bool {
	sized := func(rel string, size int64) bool {
		info, err := os.Lstat(st.abs(rel))
		return err == nil && info.Mode().IsRegular() && info.Size() == size
	}
	for _, f := range m.Files {
		if !sized(f.Path, f.Size) {
			return false
		}
	}
	for _, img := range m.Images {
		if !sized(img.Path, img.Size) {
			return false
		}
	}
	for _, p := range m.Programs {
		if f, _ := m.File(p.File); p.Path != f.Path {
			if target, err := os.Readlink(st.abs(p.Path)); err != nil || target != filepath.Base(f.Path) {
				return false
			}
		}
	}
	return true
}

// blob stages the files of one payload blob, decoding the stream only if one of them is
// missing or damaged; intact files are decoded past, not rewritten.
func (st *stager) blob(m Manifest, b manifest.Blob) error {
	files := make([]manifest.File, len(b.Files))
	var damaged []string
	for i, name := range b.Files {
		files[i], _ = m.File(name) // Validate guarantees it exists
		path := st.abs(files[i].Path)
		if intact(path, files[i].Size, files[i].SHA256) {
			if err := os.Chmod(path, files[i].Mode); err != nil { // repairs a mode changed by hand
				return fmt.Errorf("stage %s: %w", name, err)
			}
			continue
		}
		damaged = append(damaged, name)
	}
	if len(damaged) == 0 {
		st.kept += len(files)
		return nil
	}
	start := time.Now()
	src, err := st.payload.Open(b.Name)
	if err != nil {
		return fmt.Errorf("stage %s: open payload blob %s: %w", strings.Join(damaged, ", "), b.Name, err)
	}
	defer src.Close()
	stream, err := newStream(src, b.Name)
	if err != nil {
		return err
	}
	defer stream.close()
	for _, f := range files {
		if !slices.Contains(damaged, f.Name) {
			if err := stream.next(io.Discard, f); err != nil {
				return fmt.Errorf("stage %s: %w", f.Name, err)
			}
			st.kept++
			continue
		}
		path := st.abs(f.Path)
		if err := st.write(path, f.Mode, func(w io.Writer) error { return stream.next(w, f) }); err != nil {
			return fmt.Errorf("stage %s to %s: %w", f.Name, path, err)
		}
		fmt.Fprintf(st.progress, "staged %s %s (%s)\n", f.Name, f.Version, mb(f.Size))
	}
	if err := stream.end(); err != nil {
		return err
	}
	fmt.Fprintf(st.progress, "decoded %s (%s compressed) in %s\n", b.Name, mb(b.Size), time.Since(start).Round(time.Millisecond))
	return nil
}

// link makes rel a symlink to target (a name in the same directory).
func (st *stager) link(rel, target string) error {
	path := st.abs(rel)
	if cur, err := os.Readlink(path); err == nil && cur == target {
		st.kept++
		return nil
	}
	if err := st.mkdir(filepath.Dir(path)); err != nil {
		return err
	}
	if err := atomicfile.Symlink(target, path); err != nil {
		return err
	}
	st.written++
	return nil
}

// write writes a file atomically and durably (atomicfile): path is replaced only once
// fill succeeds.
func (st *stager) write(path string, mode fs.FileMode, fill func(io.Writer) error) error {
	if err := st.mkdir(filepath.Dir(path)); err != nil {
		return err
	}
	if err := atomicfile.WriteFunc(path, mode, fill); err != nil {
		return err
	}
	st.written++
	return nil
}

// mkdir creates dir (and its parents) under the data directory and checks that, like the
// data directory, only this user controls it (checkOwned): a bin directory planted as a
// symlink to someone else's directory is refused, not written through.
func (st *stager) mkdir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for d := dir; d != filepath.Clean(st.dir) && len(d) > len(st.dir); d = filepath.Dir(d) {
		info, err := os.Lstat(d)
		if err != nil {
			return fmt.Errorf("check %s: %w", d, err)
		}
		if !info.IsDir() {
			return fmt.Errorf("staging directory %s is not a directory (a symlink?): remove it and run knode again", d)
		}
		if err := checkOwned(d); err != nil {
			return err
		}
	}
	return nil
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
