package gossip

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"knode.dev/knode/pki"
)

// A peer that dies in the middle of its answer (or before reading the
// request) is a join failure, which makes the joiner try its other peers,
// not a verdict on the token or the cluster.
func TestAdmissionBrokenOffIsAJoinError(t *testing.T) {
	f := newFixture(t)
	tok, _ := pki.NewToken(f.ca)
	for name, answer := range map[string][]byte{
		"closed at once":         nil,
		"status only":            {0},
		"half of the peer's key": append([]byte{0}, make([]byte, 16)...),
		"sealed answer cut off":  append(append([]byte{0}, make([]byte, 32)...), 200, 1, 1, 2, 3),
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if answer != nil {
				io.ReadFull(c, make([]byte, admitReqSize))
				c.Write(answer)
			}
			c.Close()
		}()
		_, err = Admit(context.Background(), ln.Addr().String(), tok)
		ln.Close()
		if !errors.Is(err, ErrJoin) || errors.Is(err, ErrTokenRefused) || !strings.Contains(err.Error(), ln.Addr().String()) {
			t.Errorf("%s: err = %v, want a join error naming the peer", name, err)
		}
	}
}
