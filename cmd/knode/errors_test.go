package main

import (
	"context"
	"net"
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
		{[]string{"images"}, exitUsage, `unknown command "images"; the commands are: init, join, status,`},
		{[]string{"status", "--data-dir", dir}, exitError, "no knode agent is running here"},
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
