package assets

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/release/appended"
)

// ExtractFS writes the one file, verified, with a stamp; a second call finds it; a file
// damaged with its size kept is trusted by the stamp (the fast path), one of another size
// is rewritten.
func TestExtractOneFile(t *testing.T) {
	payload, _ := synthetic(t)
	dir := filepath.Join(t.TempDir(), "cache")
	ctx := context.Background()
	// bridge is the second file of small.zst: pause is decoded past and checked, not written.
	path, written, err := ExtractFS(ctx, payload, dir, "bridge")
	if err != nil || !written {
		t.Fatalf("ExtractFS = %v, %v; want written", written, err)
	}
	if data, _ := os.ReadFile(path); string(data) != "cni bridge" || path != filepath.Join(dir, "bridge") {
		t.Errorf("%s holds %q", path, data)
	}
	if _, err := os.Stat(filepath.Join(dir, "pause")); !os.IsNotExist(err) {
		t.Error("ExtractFS wrote a file it was not asked for")
	}
	if _, written, err := ExtractFS(ctx, payload, dir, "bridge"); err != nil || written {
		t.Errorf("second ExtractFS = %v, %v; want nothing written", written, err)
	}
	if err := os.WriteFile(path, []byte("short"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, written, err := ExtractFS(ctx, payload, dir, "bridge"); err != nil || !written {
		t.Errorf("ExtractFS after truncation = %v, %v; want it rewritten", written, err)
	}
	assertNoTemporaries(t, dir)
	if _, _, err := ExtractFS(ctx, payload, dir, "nope"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("ExtractFS of a missing file = %v, want ErrCorrupt", err)
	}
}

// A corrupt stream before the file or in it leaves no file and no stamp.
func TestExtractRefusesCorruptPayload(t *testing.T) {
	payload, _ := synthetic(t)
	blob := bytes.Clone(payload["kube.zst"].Data)
	blob[len(blob)/2] ^= 0xff
	payload["kube.zst"].Data = blob
	dir := t.TempDir()
	if _, _, err := ExtractFS(context.Background(), payload, dir, "kube"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ExtractFS = %v, want ErrCorrupt", err)
	}
	for _, name := range []string{"kube", stampName} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s exists after a failed extraction", name)
		}
	}
}

// Staging refuses directories that another user could change between staging and a run:
// one writable by others, and a bin directory planted as a symlink.
func TestStageRefusesDirectoriesOthersControl(t *testing.T) {
	payload, _ := synthetic(t)
	open := t.TempDir()
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := StageFS(context.Background(), payload, open, nil); err == nil || !strings.Contains(err.Error(), "chmod go-w") {
		t.Errorf("StageFS into a mode 0777 directory = %v, want a refusal naming the fix", err)
	}
	if _, _, err := ExtractFS(context.Background(), payload, open, "kube"); err == nil {
		t.Error("ExtractFS into a mode 0777 directory succeeded")
	}

	dir, elsewhere := t.TempDir(), t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(dir, "bin")); err != nil {
		t.Fatal(err)
	}
	if _, err := StageFS(context.Background(), payload, dir, nil); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("StageFS with bin a symlink = %v, want a refusal", err)
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Errorf("staging wrote through the planted symlink: %v", entries)
	}

	// A data directory that is itself a symlink of this user's, to a directory of theirs, is fine.
	link := filepath.Join(t.TempDir(), "data")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	if _, err := StageFS(context.Background(), payload, link, nil); err != nil {
		t.Errorf("StageFS into a symlinked data directory: %v", err)
	}
}

// Root's staging refuses a data directory another user created in advance.
func TestStageRefusesDirectoryOfAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (chown)")
	}
	payload, _ := synthetic(t)
	dir := t.TempDir()
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := StageFS(context.Background(), payload, dir, nil); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Errorf("StageFS into nobody's directory = %v, want a refusal", err)
	}
}

// ReadManifest and Stage read the payload appended to the binary KNODE_LAUNCHER names.
func TestPayloadFromLauncher(t *testing.T) {
	payload, m := synthetic(t)
	var bin bytes.Buffer
	bin.WriteString("launcher program")
	if err := appended.Write(&bin, payload); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "knode")
	if err := os.WriteFile(path, bin.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(LauncherEnv, path)
	got, err := ReadManifest()
	if err != nil || len(got.Files) != len(m.Files) {
		t.Fatalf("ReadManifest = %d files, %v; want %d", len(got.Files), err, len(m.Files))
	}
	s, err := Stage(context.Background(), t.TempDir(), nil)
	if err != nil || s.Written != 6 {
		t.Errorf("Stage = %d written, %v; want 6", s.Written, err)
	}
	t.Setenv(LauncherEnv, os.Args[0]) // the test binary carries none
	if _, err := ReadManifest(); !errors.Is(err, ErrNoPayload) {
		t.Errorf("ReadManifest of a binary without payload = %v, want ErrNoPayload", err)
	}
}

// A Launch survives the environment; TakeLaunch keeps only the launcher's path for
// programs this one runs.
func TestLaunchEnvironment(t *testing.T) {
	start := time.Unix(1700000000, 123)
	l := Launch{Launcher: "/usr/local/bin/knode", Start: start, StagedDir: "/var/lib/knode", Took: 980 * time.Millisecond, Written: 27}
	env := l.Environ([]string{"PATH=/bin", LauncherEnv + "=/old", envWritten + "=3"})
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	if strings.Count(strings.Join(env, "\n"), LauncherEnv+"=") != 1 {
		t.Errorf("Environ kept an earlier value: %q", env)
	}
	got, ok := TakeLaunch()
	if !ok || got != l {
		t.Errorf("TakeLaunch = %+v, %v; want %+v", got, ok, l)
	}
	if os.Getenv(envWritten) != "" || os.Getenv(LauncherEnv) != l.Launcher {
		t.Error("TakeLaunch left the staging figures or removed the launcher's path")
	}
	if !got.StagedInto("/var/lib/knode/") || got.StagedInto("/var/lib/other") || (Launch{}).StagedInto("/var/lib/knode") {
		t.Error("StagedInto compares data directories wrongly")
	}
}

// Root reads no payload from a binary that someone else may change: $KNODE_LAUNCHER comes
// from the environment.
func TestRootRefusesAPayloadOthersCanChange(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	payload, _ := synthetic(t)
	var bin bytes.Buffer
	if err := appended.Write(&bin, payload); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "knode")
	if err := os.WriteFile(path, bin.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(LauncherEnv, path)
	if _, err := ReadManifest(); err != nil || TrustedSource() != path {
		t.Fatalf("root's own binary: ReadManifest = %v, TrustedSource = %q", err, TrustedSource())
	}
	if err := os.Chmod(path, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadManifest(); err == nil || !strings.Contains(err.Error(), "chmod go-w") {
		t.Errorf("ReadManifest of a world-writable binary = %v, want a refusal", err)
	}
	if TrustedSource() != "" {
		t.Error("TrustedSource names a world-writable binary")
	}
}
