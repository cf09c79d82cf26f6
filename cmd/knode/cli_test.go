package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"knode.dev/knode/agent"
)

// knode runs the CLI in-process and returns its exit code and output.
func knode(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(ctx, append([]string{"knode"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func tempDir(t *testing.T) string {
	d, err := os.MkdirTemp("", "kc") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestBadInputIsUsageErrorAndWritesNothing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tok := "knode1." + strings.Repeat("a", 64) + "." + strings.Repeat("b", 32)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"init", "--pod-cidr", "10.0.0.0/16", "--service-cidr", "10.0.0.0/20"}, "overlaps"},
		{[]string{"init", "--node-cidr-mask", "16"}, "--node-cidr-mask 16"},
		{[]string{"init", "--pod-cidr", "10.10.0.0/30", "--node-cidr-mask", "31"}, "--node-cidr-mask 31"},
		{[]string{"init", "--masters", "4"}, "--masters 4"},
		{[]string{"init", "--pod-cidr", "banana"}, `"banana"`},
		{[]string{"init", "--bind", "300.1.1.1:7946"}, "300.1.1.1"},
		{[]string{"init", "--bind", taken.Addr().String()}, "already in use"},
		{[]string{"init", "extra"}, "takes no arguments"},
		{[]string{"init", "--no-such-flag"}, "no-such-flag"},
		{[]string{"join", "--token", tok}, "exactly one peer"},
		{[]string{"join", "127.0.0.1:1"}, "--token is missing"},
		{[]string{"join", "127.0.0.1:1", "--token", "abc"}, "malformed token"},
		{[]string{"join", "127.0.0.1:99999", "--token", tok}, "99999"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			dir := filepath.Join(tempDir(t), "data")
			args := append(tc.args, "--data-dir", dir, "--dry-run", "--foreground")
			if !strings.Contains(strings.Join(tc.args, " "), "--bind") {
				args = append(args, "--bind", freePort(t))
			}
			code, _, stderr := knode(context.Background(), args...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 naming %q", code, stderr, tc.want)
			}
			if strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
				t.Errorf("error spans several lines: %q", stderr)
			}
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("a refused command created %s", dir)
			}
		})
	}
}

// agentProc is one foreground `knode init|join` running in a goroutine.
type agentProc struct {
	cancel context.CancelFunc
	done   chan int
	out    *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startForeground(t *testing.T, args ...string) *agentProc {
	ctx, cancel := context.WithCancel(context.Background())
	p := &agentProc{cancel: cancel, done: make(chan int, 1), out: &syncBuffer{}}
	go func() {
		p.done <- run(ctx, append([]string{"knode"}, args...), p.out, p.out)
	}()
	t.Cleanup(func() { p.stop() })
	return p
}

func (p *agentProc) stop() int {
	p.cancel()
	select {
	case c := <-p.done:
		p.done <- c
		return c
	case <-time.After(10 * time.Second):
		return -1
	}
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestInitJoinStatusTokenReset(t *testing.T) {
	root := tempDir(t)
	d1, d2 := filepath.Join(root, "a"), filepath.Join(root, "b")
	bind1 := freePort(t)
	p1 := startForeground(t, "init", "--dry-run", "--foreground", "--node-name", "a", "--bind", bind1, "--data-dir", d1, "--cluster-name", "demo", "--log-level", "error")
	waitFor(t, "init to print the join command", func() bool { return strings.Contains(p1.out.String(), "knode join") })
	for _, f := range []string{"", "secrets", "secrets/ca.key", "token", "cluster.json"} {
		fi, err := os.Stat(filepath.Join(d1, f))
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", f, fi.Mode().Perm(), want)
		}
	}
	code, tok, _ := knode(context.Background(), "token", "--data-dir", d1)
	tok = strings.TrimSpace(tok)
	if code != 0 || !strings.Contains(p1.out.String(), "--token "+tok) || !strings.Contains(p1.out.String(), "knode join "+bind1) {
		t.Fatalf("token %q (exit %d) does not match the printed join command:\n%s", tok, code, p1.out.String())
	}
	// A wrong token of the right form: refused, nothing left behind.
	wrong := tok[:len(tok)-1] + map[bool]string{true: "1", false: "0"}[tok[len(tok)-1] == '0']
	code, _, stderr := knode(context.Background(), "join", bind1, "--token", wrong, "--dry-run", "--foreground", "--node-name", "x", "--bind", freePort(t), "--data-dir", filepath.Join(root, "x"))
	if code != exitUsage || !strings.Contains(stderr, "--token") || !strings.Contains(stderr, "refused the token") {
		t.Errorf("wrong token: exit %d %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "x", "cluster.json")); err == nil {
		t.Error("a refused join left cluster.json")
	}
	// The user's word order: the peer before the flags.
	p2 := startForeground(t, "join", bind1, "--token", tok, "--dry-run", "--foreground", "--node-name", "b", "--bind", freePort(t), "--data-dir", d2, "--log-level", "error")
	waitFor(t, "join", func() bool { return strings.Contains(p2.out.String(), "agent running") })
	var st agent.Status
	// Exit code 3: --dry-run agents run no kubelet, so no node reports health.
	waitFor(t, "both nodes in a's status", func() bool {
		code, out, _ := knode(context.Background(), "status", "--json", "--data-dir", d1)
		return code == exitUnhealthy && json.Unmarshal([]byte(out), &st) == nil && len(st.Members) == 2
	})
	if st.Cluster.Name != "demo" || st.Self != "a" || st.Members[0].Roles[0] != "master" || st.Members[1].Roles[0] != "worker" ||
		st.Members[0].PodCIDR == st.Members[1].PodCIDR {
		t.Errorf("status: %+v", st)
	}
	code, table, _ := knode(context.Background(), "status", "--data-dir", d2)
	if code != exitUnhealthy || !strings.Contains(table, "b (self)") || !strings.Contains(table, "alive") || !strings.Contains(table, "b: no health reported yet") {
		t.Errorf("status table (exit %d):\n%s", code, table)
	}
	if strings.Contains(table, "PRIVATE") || strings.Contains(table, tok) {
		t.Error("status shows a secret")
	}
	// Tokens: made and deleted on a master only; a joiner keeps none.
	if _, err := os.Stat(filepath.Join(d2, "token")); err == nil {
		t.Error("the joiner kept its join token")
	}
	code, out, stderr := knode(context.Background(), "token", "create", "--data-dir", d2)
	if code == 0 || !strings.Contains(stderr, "master") {
		t.Errorf("token create on a worker: exit %d %q %q", code, out, stderr)
	}
	code, _, stderr = knode(context.Background(), "token", "create", "--ttl", "5s", "--data-dir", d1)
	if code != exitUsage || !strings.Contains(stderr, "--ttl") {
		t.Errorf("token create --ttl 5s: exit %d %q", code, stderr)
	}
	code, out, stderr = knode(context.Background(), "token", "create", "--ttl", "1h", "--description", "ci", "--json", "--data-dir", d1)
	var made agent.NewToken
	if code != 0 || json.Unmarshal([]byte(out), &made) != nil || made.Info.State != "valid" || made.Info.Description != "ci" {
		t.Fatalf("token create: exit %d %q %q", code, out, stderr)
	}
	tokFile := filepath.Join(root, "tok")
	if err := os.WriteFile(tokFile, []byte(made.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr = knode(context.Background(), "token", "delete", made.Info.ID, "--data-dir", d1); code != 0 {
		t.Fatalf("token delete: exit %d %q", code, stderr)
	}
	code, _, stderr = knode(context.Background(), "join", bind1, "--token-file", tokFile, "--dry-run", "--foreground", "--node-name", "y", "--bind", freePort(t), "--data-dir", filepath.Join(root, "y"))
	if code != exitUsage || !strings.Contains(stderr, "--token-file") || !strings.Contains(stderr, "refused the token") {
		t.Errorf("join with a deleted token from a file: exit %d %q", code, stderr)
	}
	waitFor(t, "the worker to list the deleted token", func() bool {
		code, out, _ = knode(context.Background(), "token", "list", "--data-dir", d2)
		return code == 0 && strings.Contains(out, made.Info.ID) && strings.Contains(out, "deleted") && strings.Contains(out, "made by init")
	})
	if strings.Contains(out, made.Token) {
		t.Error("token list shows a secret")
	}
	// knode remove: only a master's agent signs a release, never of a live
	// node without --force, and only of a node that holds a place.
	for _, tc := range []struct {
		args []string
		exit int
		want string
	}{
		{[]string{"remove", "--data-dir", d1}, exitUsage, "one node name"},
		{[]string{"remove", "nobody", "--data-dir", d1}, exitUsage, `"nobody"`},
		{[]string{"remove", "a", "--data-dir", d1}, exitUsage, "knode reset"},
		{[]string{"remove", "b", "--data-dir", d1}, exitError, "still answers gossip"},
		{[]string{"remove", "a", "--force", "--data-dir", d2}, exitError, "decision key"},
	} {
		code, _, stderr := knode(context.Background(), tc.args...)
		if code != tc.exit || !strings.Contains(stderr, tc.want) {
			t.Errorf("knode %v: exit %d %q, want exit %d and %q", tc.args, code, stderr, tc.exit, tc.want)
		}
	}
	// reset b while its agent runs: it leaves, its foreground process ends.
	code, _, stderr = knode(context.Background(), "reset", "--data-dir", d2)
	if code != 0 {
		t.Fatalf("reset: exit %d %s", code, stderr)
	}
	select {
	case <-p2.done:
	case <-time.After(10 * time.Second):
		t.Fatal("b's agent still runs after reset")
	}
	if _, err := os.Stat(d2); err == nil {
		t.Error("reset left the data dir")
	}
	waitFor(t, "b gone from a's status", func() bool {
		_, out, _ := knode(context.Background(), "status", "--json", "--data-dir", d1)
		return json.Unmarshal([]byte(out), &st) == nil && len(st.Members) == 1
	})
	if c := p1.stop(); c != 0 {
		t.Errorf("init exited %d after SIGINT:\n%s", c, p1.out.String())
	}
	code, _, stderr = knode(context.Background(), "status", "--data-dir", d1)
	if code == 0 || !strings.Contains(stderr, "no knode agent") {
		t.Errorf("status without an agent: exit %d %q", code, stderr)
	}
}
