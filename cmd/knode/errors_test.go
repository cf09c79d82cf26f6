package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"knode.dev/knode/hostprep"
)

func TestClearErrors(t *testing.T) {
	ctx := context.Background()
	dir := tempDir(t)
	t.Setenv("HOME", dir) // no ~/.kube/config
	t.Setenv("KUBECONFIG", "")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"imagez"}, exitUsage, `unknown command "imagez"; the commands are: init, join, status,`},
		{[]string{"status", "--data-dir", dir}, exitError, "no knode agent is running here"},
		{[]string{"init", "--dry-run", "--foreground", "--data-dir", filepath.Join(dir, "init"), "--timeout", "30s"}, exitUsage, "--timeout 30s: too short for a node to come up; give at least 1m"},
		{[]string{"join", "10.0.0.1:7946", "--token", "knode1." + strings.Repeat("ab", 32) + "." + strings.Repeat("cd", 16), "--dry-run", "--foreground", "--data-dir", filepath.Join(dir, "join"), "--timeout", "0s"}, exitUsage, "--timeout 0s: too short"},
		{[]string{"kubectl", "get", "nodes"}, exitError, "no admin kubeconfig on this node (" + hostprep.AdminKubeconfig + " is on masters only): copy it from a master"},
	} {
		if tc.args[0] == "kubectl" && exists(hostprep.AdminKubeconfig) {
			continue // a master: kubectl has its kubeconfig
		}
		code, _, stderr := knode(ctx, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("knode %s: exit %d, stderr %q; want exit %d and one line with %q", strings.Join(tc.args, " "), code, stderr, tc.code, tc.want)
		}
	}
	if needsServer([]string{"version", "--client"}) || needsServer([]string{"help"}) || !needsServer([]string{"get", "pods"}) {
		t.Error("needsServer")
	}
}

func TestStoppedAgentSaysHowToStartIt(t *testing.T) {
	dir := tempDir(t)
	sock := filepath.Join(dir, "knode.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // the file stays, nothing answers: an agent that died
	code, _, stderr := knode(context.Background(), "status", "--data-dir", dir)
	if code != exitError || !strings.Contains(stderr, "no knode agent is running on "+sock) || !strings.Contains(stderr, "systemctl start knode") {
		t.Errorf("exit %d: %s", code, stderr)
	}
}

// completing runs knode with the completion flag; urfave/cli reads the word
// being completed from os.Args, so the test sets them as a shell would.
func completing(t *testing.T, args ...string) (int, string) {
	full := append(append([]string{"knode"}, args...), "--generate-bash-completion")
	saved := os.Args
	os.Args = full
	defer func() { os.Args = saved }()
	code, out, _ := knode(context.Background(), full[1:]...)
	return code, out
}

func TestCompletion(t *testing.T) {
	ctx := context.Background()
	code, out := completing(t)
	for _, c := range []string{"init\n", "join\n", "status\n", "kubectl\n", "completion\n"} {
		if code != 0 || !strings.Contains(out, c) {
			t.Errorf("commands: exit %d, missing %q in\n%s", code, c, out)
		}
	}
	// A flag being completed, after a positional argument too.
	for _, args := range [][]string{{"status", "-"}, {"join", "10.0.0.1:7946", "--t"}} {
		code, out = completing(t, args...)
		want := map[string]string{"status": "--wait\n", "join": "--token\n"}[args[0]]
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("%v: exit %d, missing %q in\n%s", args, code, want, out)
		}
	}
	for _, shell := range []string{"bash", "zsh"} {
		code, out, _ := knode(ctx, "completion", shell)
		if code != 0 || !strings.Contains(out, "--generate-bash-completion") || !strings.Contains(out, "_knode") {
			t.Errorf("completion %s: exit %d\n%s", shell, code, out)
		}
	}
	if code, _, stderr := knode(ctx, "completion", "fish"); code != exitUsage || !strings.Contains(stderr, `"fish"`) {
		t.Errorf("completion fish: exit %d %s", code, stderr)
	}
}
