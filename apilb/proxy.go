package apilb

import (
	"errors"
	"io"
	"net"
	"sync"
)

// acceptLoop hands each client connection to its own goroutine until Stop.
func (b *Balancer) acceptLoop() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			select {
			case <-b.stop:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			b.opts.Logger.Error("apiserver endpoint: accept", "err", err)
			return
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.serve(c)
		}()
	}
}

// serve connects a client to the first backend that answers, in the order of
// candidates, and splices the two until either side ends or the backend is cut.
func (b *Balancer) serve(client net.Conn) {
	d := net.Dialer{Timeout: b.opts.DialTimeout}
	for _, addr := range b.candidates() {
		up, err := d.Dial("tcp", addr)
		if err != nil {
			b.opts.Logger.Debug("apiserver endpoint: dial", "backend", addr, "err", err)
			continue
		}
		s := &splice{client: client, up: up}
		if err := b.track(addr, s); err != nil {
			up.Close()
			continue
		}
		s.run()
		b.untrack(addr, s)
		return
	}
	b.opts.Logger.Warn("apiserver endpoint: no backend answered; connection closed", "client", client.RemoteAddr())
	client.Close()
}

// splice is one client connection joined to one backend connection.
type splice struct {
	client, up net.Conn
	once       sync.Once
}

// run copies both ways; when one direction ends, the other side's write
// half is closed (a client's half-close reaches the apiserver), and once both
// end the connections are closed.
func (s *splice) run() {
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		_, err := io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok && err == nil {
			cw.CloseWrite()
			return
		}
		s.close() // an error: the other direction cannot go on either
	}
	go pipe(s.up, s.client)
	go pipe(s.client, s.up)
	wg.Wait()
	s.close()
}

// close cuts both connections; the copiers then end.
func (s *splice) close() {
	s.once.Do(func() {
		s.client.Close()
		s.up.Close()
	})
}
