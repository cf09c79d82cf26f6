package main

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
