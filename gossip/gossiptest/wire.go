package gossiptest

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Wire is memberlist's UDP/TCP transport with two additions that tests and
// benchmarks need: it counts the bytes this node sends, and it can drop all
// traffic to or from chosen peers (to cut a cluster in two and heal it).
type Wire struct {
	inner   *memberlist.NetTransport
	blocked func(remote string) bool
	sent    atomic.Int64
	packets chan *memberlist.Packet
	streams chan net.Conn
	closing chan struct{} // Shutdown began: drop what still arrives
	done    chan struct{} // the inner transport is down: forwarders end
	once    sync.Once
}

var _ memberlist.Transport = (*Wire)(nil)

// NewWire listens on addr (port 0 picks a free port). blocked, if not nil, is
// asked about every remote "ip:port" (for incoming traffic, the source port is
// not the peer's gossip port, so it is asked about "ip:*" as well).
func NewWire(addr netip.AddrPort, blocked func(remote string) bool) (*Wire, error) {
	inner, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{addr.Addr().String()}, BindPort: int(addr.Port()),
	})
	if err != nil {
		return nil, err
	}
	if blocked == nil {
		blocked = func(string) bool { return false }
	}
	w := &Wire{inner: inner, blocked: blocked, packets: make(chan *memberlist.Packet), streams: make(chan net.Conn),
		closing: make(chan struct{}), done: make(chan struct{})}
	go w.forwardPackets()
	go w.forwardStreams()
	return w, nil
}

// Port is the port the wire listens on.
func (w *Wire) Port() uint16 { return uint16(w.inner.GetAutoBindPort()) }

// Sent is the number of bytes this node has sent so far.
func (w *Wire) Sent() int64 { return w.sent.Load() }

func (w *Wire) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return w.inner.FinalAdvertiseAddr(ip, port)
}

func (w *Wire) WriteTo(b []byte, addr string) (time.Time, error) {
	if w.blocked(addr) {
		return time.Now(), nil // lost on the way
	}
	w.sent.Add(int64(len(b)))
	return w.inner.WriteTo(b, addr)
}

func (w *Wire) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if w.blocked(addr) {
		return nil, errors.New("blocked: network partition")
	}
	c, err := w.inner.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: &w.sent}, nil
}

func (w *Wire) PacketCh() <-chan *memberlist.Packet { return w.packets }
func (w *Wire) StreamCh() <-chan net.Conn           { return w.streams }

// Shutdown stops the inner transport. Its listeners block until their last
// packet is taken, so the forwarders keep draining (and dropping) until it is
// down.
func (w *Wire) Shutdown() error {
	var err error
	w.once.Do(func() {
		close(w.closing)
		err = w.inner.Shutdown()
		close(w.done)
	})
	return err
}

func (w *Wire) fromBlocked(a net.Addr) bool {
	host, _, err := net.SplitHostPort(a.String())
	return err == nil && (w.blocked(a.String()) || w.blocked(host+":*"))
}

func (w *Wire) forwardPackets() {
	for {
		select {
		case p := <-w.inner.PacketCh():
			if w.fromBlocked(p.From) {
				continue
			}
			select {
			case w.packets <- p:
			case <-w.closing:
			}
		case <-w.done:
			return
		}
	}
}

func (w *Wire) forwardStreams() {
	for {
		select {
		case c := <-w.inner.StreamCh():
			if w.fromBlocked(c.RemoteAddr()) {
				c.Close()
				continue
			}
			select {
			case w.streams <- &countingConn{Conn: c, n: &w.sent}:
			case <-w.closing:
				c.Close()
			}
		case <-w.done:
			return
		}
	}
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n.Add(int64(n))
	return n, err
}
