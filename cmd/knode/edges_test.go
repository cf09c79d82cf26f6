package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/config"
	"knode.dev/knode/datadir"
	"knode.dev/knode/hostprep"
	"knode.dev/knode/hostprep/hostpreptest"
)

// TestJoinClosedConnectionIsNotWrongToken: a peer that closes the connection
// without answering (not a knode agent, or one shutting down) is a failed join
// (exit 1), not a wrong --token (exit 2).
func TestJoinClosedConnectionIsNotWrongToken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// Read what the joiner sends, then close: it sees EOF (closing
			// with unread data would reset the connection instead).
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	tok := "knode1." + strings.Repeat("a", 64) + "." + strings.Repeat("b", 32)
	code, _, stderr := knode(context.Background(), "join", ln.Addr().String(), "--token", tok, "--dry-run", "--foreground",
		"--node-name", "x", "--bind", freePort(t), "--data-dir", filepath.Join(tempDir(t), "data"))
	if code != exitError || strings.Contains(stderr, "--token") || !strings.Contains(stderr, "closed the connection") {
		t.Fatalf("exit %d, stderr %q; want exit 1 saying the peer closed the connection", code, stderr)
	}
}

// TestIntersperseFollowsFlagDefinitions: a boolean flag, even one no list
// names, never takes the positional argument after it as its value.
func TestIntersperseFollowsFlagDefinitions(t *testing.T) {
	app := &cli.App{Commands: []*cli.Command{{Name: "join", Flags: []cli.Flag{
		&cli.BoolFlag{Name: "brand-new", Aliases: []string{"b"}},
		&cli.StringFlag{Name: "token"},
	}}}}
	for _, tc := range []struct{ in, want string }{
		{"knode join --brand-new 10.0.0.1:7946 --token T", "knode join --brand-new --token T 10.0.0.1:7946"},
		{"knode join -b 10.0.0.1:7946 --token=T", "knode join -b --token=T 10.0.0.1:7946"},
		{"knode join --help 10.0.0.1:7946", "knode join --help 10.0.0.1:7946"},
		{"knode join --token T -- --odd-peer", "knode join --token T --odd-peer"},
		{"knode nosuch --x y", "knode nosuch --x y"},
	} {
		if got := strings.Join(interspersed(app, strings.Fields(tc.in)), " "); got != tc.want {
			t.Errorf("%s\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
	// knode's own commands: every boolean flag leaves the next argument alone,
	// every other flag takes it.
	real := newApp(io.Discard, io.Discard)
	for _, cmd := range real.Commands {
		for _, f := range cmd.Flags {
			name := f.Names()[0]
			_, isBool := f.(*cli.BoolFlag)
			got := interspersed(real, []string{"knode", cmd.Name, "pos", "--" + name, "next"})
			if tookNext := got[3] == "next"; tookNext == isBool {
				t.Errorf("knode %s pos --%s next: %q (boolean %v)", cmd.Name, name, got, isBool)
			}
		}
	}
}

// TestResetDryRunListsThePlan: `knode reset --dry-run` lists what reverting
// this host would change, phase by phase, and changes nothing.
func TestResetDryRunListsThePlan(t *testing.T) {
	f := hostpreptest.New()
	if err := f.Net.AddLink(hostprep.Link{Name: hostprep.BridgeName, Kind: "bridge", MTU: 1500}); err != nil {
		t.Fatal(err)
	}
	if err := f.IPTables.NewChain("nat", "KUBE-SERVICES"); err != nil {
		t.Fatal(err)
	}
	if err := f.Files.WriteFile(hostprep.KubeletKubeconfig, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := f.String()
	dir := datadir.Dir{Root: filepath.Join(tempDir(t), "data")}
	open := func(datadir.Dir) (*hostprep.Host, error) { return f.Host(), nil }
	plan := strings.Join(resetPlan(context.Background(), dir, open, false), "\n")
	for _, want := range []string{
		"holds no cluster membership",
		"[bridge] would delete",
		"[iptables] would",
		"would remove " + hostprep.KubeletKubeconfig,
		"would remove " + dir.Root,
	} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan lacks %q:\n%s", want, plan)
		}
	}
	if i, j := strings.Index(plan, "[iptables]"), strings.Index(plan, "[bridge]"); i > j {
		t.Errorf("plan not newest phase first (iptables before bridge):\n%s", plan)
	}
	if after := f.String(); after != before {
		t.Errorf("a dry run changed the host:\n%s\nwas:\n%s", after, before)
	}
	clean := hostpreptest.New()
	plan = strings.Join(resetPlan(context.Background(), dir, func(datadir.Dir) (*hostprep.Host, error) { return clean.Host(), nil }, true), "\n")
	if !strings.Contains(plan, "the host holds nothing knode made") || !strings.Contains(plan, "keeping the staged components") {
		t.Errorf("plan for a clean host, --keep-data:\n%s", plan)
	}
}

// TestFailedStartReportsCleanupErrors: a failed init/join undoes what it
// wrote; what it cannot undo is reported, not dropped, and the cause stays
// the command's error.
func TestFailedStartReportsCleanupErrors(t *testing.T) {
	cause := errors.New("no pod subnet")
	root := tempDir(t)
	data := filepath.Join(root, "data")
	d := datadir.Dir{Root: data}
	if err := d.Ensure(); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteFile(datadir.TokenFile, []byte("t")); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	b := &bringUp{node: config.Node{DataDir: data}, p: newProgress(&out)}
	b.p.Step("waiting")
	if err := b.fail(nil, 0, cause); err != cause {
		t.Fatalf("fail returned %v, want the cause", err)
	}
	if d.Exists(datadir.TokenFile) || strings.Contains(out.String(), "cleaning up") {
		t.Errorf("state not removed, or a clean undo reported as failed:\n%s", out.String())
	}
	// A data directory whose state cannot be removed (here: it is a file).
	notDir := filepath.Join(root, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	b = &bringUp{node: config.Node{DataDir: notDir}, p: newProgress(&out)}
	b.p.Step("waiting")
	if err := b.fail(nil, 0, cause); err != cause {
		t.Fatalf("fail returned %v, want the cause", err)
	}
	if !strings.Contains(out.String(), "cleaning up failed too") || !strings.Contains(out.String(), notDir) {
		t.Errorf("the failed undo is not reported:\n%s", out.String())
	}
	if err := b.abandon(nil, 0); err == nil || !strings.Contains(err.Error(), "remove the state in "+notDir) {
		t.Errorf("abandon = %v, want the failed removal", err)
	}
}
