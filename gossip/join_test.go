package gossip

import (
	"crypto/ed25519"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// startNode starts a gossip endpoint on loopback whose key starts with b.
func startNode(t *testing.T, name string, b byte) *Node {
	t.Helper()
	key := make([]byte, 32)
	key[0] = b
	_, sign, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{Name: name, Bind: netip.MustParseAddrPort("127.0.0.1:0"), Keys: [][]byte{key}, SignKey: sign, Timing: Fast}, NewState([32]byte{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.ml.Shutdown() })
	return n
}

// fakePeer accepts TCP connections on loopback and hands each to serve, then
// reads what the joiner sent and closes (so the joiner sees EOF rather than a
// reset).
func fakePeer(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			serve(c)
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// TestJoinReasons checks that only a peer gossiping under another key is
// reported as a wrong key (a wrong token, exit 2 in the CLI), and that a peer
// closing the connection or speaking something else is not.
func TestJoinReasons(t *testing.T) {
	joiner := startNode(t, "joiner", 2)
	tests := []struct {
		name     string
		peer     string
		wrongKey bool
		reason   string
	}{
		{"another key", startNode(t, "other", 1).LocalAddr().String(), true, "another key"},
		{"closed connection", fakePeer(t, func(net.Conn) {}), false, "closed the connection"},
		{"not knode", fakePeer(t, func(c net.Conn) { c.Write([]byte("HTTP/1.0 400 Bad Request\r\n\r\n")) }), false, "does not speak knode's encrypted gossip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := joiner.Join(tt.peer)
			if !errors.Is(err, ErrJoin) || errors.Is(err, ErrWrongKey) != tt.wrongKey || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("err = %v; want ErrJoin, wrong key %v, saying %q", err, tt.wrongKey, tt.reason)
			}
		})
	}
}
