package assets

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestEmbeddedPayload is `make payload-check`: it stages the payload appended to the
// release's bin/knode into a temporary directory, runs every program's version command and
// compares the output with the pinned version, checks that every staged file is a static
// executable, and that a second stage writes nothing. It runs only when KNODE_PAYLOAD_CHECK
// names that binary, since unit tests never need a payload.
func TestEmbeddedPayload(t *testing.T) {
	payload := releasePayload(t)
	m, _, err := readManifest(payload)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var progress strings.Builder
	start := time.Now()
	s, err := StageFS(context.Background(), payload, dir, &progress)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("staged in %s:\n%s", time.Since(start).Round(time.Millisecond), progress.String())

	for _, f := range m.Files {
		if err := checkStatic(s.Path(f.Name)); err != nil {
			t.Errorf("%s: %v", f.Name, err)
		}
	}
	for _, p := range m.Programs {
		cmd := exec.Command(s.Path(p.Name), p.VersionArgs...)
		cmd.Env = append(os.Environ(), p.VersionEnv...)
		out, err := cmd.CombinedOutput()
		if !bytes.Contains(out, []byte(p.VersionWant)) {
			t.Errorf("%s %s: want output containing %q, got (%v):\n%s", p.Name, strings.Join(p.VersionArgs, " "), p.VersionWant, err, out)
			continue
		}
		t.Logf("%-24s %-8s ok: %s", p.Name, p.Version, firstLine(out, p.VersionWant))
	}
	for _, img := range m.Images {
		if !slices.Contains([]string{"pause", "control-plane", "coredns"}, img.Name) {
			t.Errorf("unexpected image %s", img.Name)
		}
		t.Logf("image %-14s %s %s (%.1f MB)", img.Name, img.Image.Ref, img.Digest, float64(img.Size)/1e6)
	}

	start = time.Now()
	again, err := StageFS(context.Background(), payload, dir, nil)
	if err != nil || again.Written != 0 {
		t.Errorf("second stage: wrote %d, %v; want 0, nil", again.Written, err)
	}
	t.Logf("second stage (already staged) took %s", time.Since(start).Round(time.Microsecond))
}

// releasePayload opens the payload appended to the binary KNODE_PAYLOAD_CHECK names, or
// skips the test or benchmark.
func releasePayload(tb testing.TB) fs.FS {
	bin := os.Getenv("KNODE_PAYLOAD_CHECK")
	if bin == "" {
		tb.Skip("set KNODE_PAYLOAD_CHECK to a release bin/knode (make payload-check) to check its payload")
	}
	a, err := OpenAppended(bin)
	if errors.Is(err, ErrNoPayload) {
		tb.Fatalf("%s carries no payload: build it with `make`", bin)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { a.Close() })
	return a
}

// checkStatic reports an error unless path is an ELF executable without an interpreter
// (statically linked: no libc needed on the host or in an image).
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("dynamically linked (has an ELF interpreter)")
		}
	}
	return nil
}

func firstLine(out []byte, want string) string {
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, want) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}
