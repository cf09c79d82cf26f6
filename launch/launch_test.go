package launch

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"knode.dev/knode/assets/assetstest"
	"knode.dev/knode/config"
)

func TestDataDir(t *testing.T) {
	env := func(dir string) func(string) string {
		return func(k string) string {
			if k == "KNODE_DATA_DIR" {
				return dir
			}
			return ""
		}
	}
	cases := []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"knode", "version"}, "", DefaultDataDir},
		{[]string{"knode", "version"}, "/srv/k", "/srv/k"},
		{[]string{"knode", "init", "--data-dir", "/a"}, "/srv/k", "/a"},
		{[]string{"knode", "init", "--data-dir=/a", "--json"}, "", "/a"},
		{[]string{"knode", "-data-dir", "/a", "status"}, "", "/a"},
		{[]string{"knode", "join", "10.0.0.1", "--token", "T", "--data-dir", "/b"}, "", "/b"},
		// kubectl's and crictl's arguments are theirs; -- ends knode's flags.
		{[]string{"knode", "kubectl", "--data-dir", "/a"}, "", DefaultDataDir},
		{[]string{"knode", "crictl", "ps", "--data-dir=/a"}, "/e", "/e"},
		{[]string{"knode", "status", "--", "--data-dir", "/a"}, "", DefaultDataDir},
		{[]string{"knode", "init", "--data-dir"}, "", DefaultDataDir}, // no value: the program reports it
	}
	for _, c := range cases {
		if got := DataDir(c.args, env(c.env)); got != c.want {
			t.Errorf("DataDir(%q, KNODE_DATA_DIR=%q) = %q, want %q", c.args, c.env, got, c.want)
		}
	}
}

// The test binary plays the launcher: TestHelperLauncher runs launch.Run in it, with a
// payload whose knode program is a shell script that prints what it was given.
const script = `#!/bin/sh
echo "args=$*"
echo "launcher=$KNODE_LAUNCHER"
echo "staged=$KNODE_LAUNCH_STAGED_DIR"
echo "written=$KNODE_LAUNCH_STAGING_WRITTEN"
echo "other=$OTHER"
`

func TestHelperLauncher(t *testing.T) {
	if os.Getenv("KNODE_TEST_LAUNCHER") == "" {
		t.Skip("helper for TestLauncherExecsStagedProgram")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	euid, _ := strconv.Atoi(os.Getenv("KNODE_TEST_EUID"))
	args := append([]string{"knode"}, strings.Fields(os.Getenv("KNODE_TEST_ARGS"))...)
	err = Run(context.Background(), Env{Self: self, Args: args, Environ: os.Environ(), Euid: euid, Stderr: os.Stderr})
	t.Fatalf("Run returned: %v", err)
}

func TestLauncherExecsStagedProgram(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	payload := assetstest.Payload(t,
		assetstest.File{Name: "tool", Path: "bin/tool", Data: []byte("a component")},
		assetstest.File{Name: "knode", Path: "bin/knode", Data: []byte(script)})
	bin := assetstest.Binary(t, os.Args[0], payload)
	run := func(euid int, args string, env ...string) (string, string) {
		t.Helper()
		cmd := exec.Command(bin, "-test.run=^TestHelperLauncher$", "-test.count=1")
		cmd.Env = append(os.Environ(), append(env, "KNODE_TEST_LAUNCHER=1", "KNODE_TEST_EUID="+strconv.Itoa(euid),
			"KNODE_TEST_ARGS="+args, "OTHER=kept")...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("launcher %s: %v\n%s%s", args, err, stdout.String(), stderr.String())
		}
		return stdout.String(), stderr.String()
	}

	t.Run("root", func(t *testing.T) { testLaunchAsRoot(t, run, bin) })
	t.Run("user", func(t *testing.T) { testLaunchAsUser(t, run) })
}

type launcherRun func(euid int, args string, env ...string) (string, string)

// As root: the whole payload into --data-dir, then the staged knode runs with the same
// arguments and environment, told where the payload is and what staging did.
func testLaunchAsRoot(t *testing.T, run launcherRun, bin string) {
	if os.Geteuid() != 0 {
		t.Skip("root's launcher checks that root owns it")
	}
	data := filepath.Join(t.TempDir(), "data")
	out, errOut := run(0, "init --data-dir "+data+" --json")
	want := "args=init --data-dir " + data + " --json\nlauncher=" + bin + "\nstaged=" + data + "\nwritten=2\nother=kept\n"
	if out != want {
		t.Errorf("first run printed:\n%s\nwant:\n%s", out, want)
	}
	if !strings.Contains(errOut, "staged 2 file(s) to "+filepath.Join(data, "bin")) {
		t.Errorf("first run's stderr does not say it staged: %q", errOut)
	}
	if got, _ := os.ReadFile(filepath.Join(data, "bin", "tool")); string(got) != "a component" {
		t.Errorf("bin/tool = %q", got)
	}
	out, errOut = run(0, "status --data-dir "+data)
	if !strings.Contains(out, "written=0\n") || errOut != "" {
		t.Errorf("second run staged again or spoke: %q %q", out, errOut)
	}
}

// Any other user: only the knode program, into their cache.
func testLaunchAsUser(t *testing.T, run launcherRun) {
	cache := t.TempDir()
	out, _ := run(1000, "version", "XDG_CACHE_HOME="+cache)
	if !strings.Contains(out, "staged=\n") || !strings.Contains(out, "written=1\n") {
		t.Errorf("user's first run printed:\n%s", out)
	}
	entries, _ := os.ReadDir(filepath.Join(cache, "knode"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != ".stage.lock .staged knode" {
		t.Errorf("user cache holds %v, want the knode program with its lock and stamp", names)
	}
	out, _ = run(1000, "version", "XDG_CACHE_HOME="+cache)
	if !strings.Contains(out, "written=0\n") {
		t.Errorf("user's second run extracted again:\n%s", out)
	}
}

// A launcher with no payload says how to build one.
func TestLauncherWithoutPayload(t *testing.T) {
	_, _, err := Prepare(context.Background(), Env{Self: os.Args[0], Args: []string{"knode"}})
	if err == nil || !strings.Contains(err.Error(), "make") {
		t.Errorf("Prepare = %v, want an error saying to build with make", err)
	}
}

// The launcher stages where the program will look.
func TestDefaultDataDirIsConfigs(t *testing.T) {
	if DefaultDataDir != config.DefaultDataDir {
		t.Errorf("launch.DefaultDataDir %q, config.DefaultDataDir %q", DefaultDataDir, config.DefaultDataDir)
	}
}

// BenchmarkPrepareStaged is the launcher's work on every run once the payload is staged
// (root's path: open itself, read the manifest, lock, stamp and stats), without the exec.
// KNODE_PAYLOAD_CHECK names a release bin/knode; skipped without one.
func BenchmarkPrepareStaged(b *testing.B) {
	bin := os.Getenv("KNODE_PAYLOAD_CHECK")
	if bin == "" {
		b.Skip("set KNODE_PAYLOAD_CHECK to a release bin/knode")
	}
	dir := b.TempDir()
	e := Env{Self: bin, Args: []string{"knode", "version", "--data-dir", dir}, Euid: 0}
	if _, _, err := Prepare(context.Background(), e); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, err := Prepare(context.Background(), e); err != nil {
			b.Fatal(err)
		}
	}
}
