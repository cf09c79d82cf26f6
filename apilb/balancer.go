// Package apilb is the node-local apiserver endpoint: a TCP balancer on
// 127.0.0.1 in front of the masters' apiservers. Every client on a node (the
// kubelet, kube-proxy, the controller manager and scheduler, knode itself)
// talks to it, so losing any one master loses no node. The agent feeds it the
// masters it learns from gossip (SetBackends) and it health-checks each one's
// /readyz over TLS verified against the cluster CA.
//
// TLS is not terminated: a connection is spliced byte for byte to one
// apiserver, so clients keep their own certificates and the apiserver's
// certificate must name the endpoint's address (127.0.0.1 is in every
// master's apiserver certificate).
package apilb

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"
)

// Options configure a Balancer. Zero durations take the defaults below.
type Options struct {
	// Listen is the endpoint's address, e.g. 127.0.0.1:6444.
	Listen string
	// Roots verify the backends' serving certificates in health checks.
	Roots *x509.CertPool
	// Prefer is the backend tried first while it is healthy (a master's own
	// apiserver).
	Prefer string
	// Interval between health checks of each backend (default 300 ms).
	Interval time.Duration
	// Timeout of one health check (default 600 ms).
	Timeout time.Duration
	// Failures is how many checks in a row must fail before a backend is
	// unhealthy and its connections are cut (default 2). Interval, Timeout
	// and Failures bound the failover: 2 x (300 + 600) ms = 1.8 s.
	Failures int
	// DialTimeout bounds a connection attempt to one backend (default 1 s).
	DialTimeout time.Duration
	Logger      *slog.Logger
}

func (o *Options) defaults() {
	if o.Interval <= 0 {
		o.Interval = 300 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 600 * time.Millisecond
	}
	if o.Failures <= 0 {
		o.Failures = 2
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Balancer is a running endpoint. Its accept loop and its health loop are
// its two goroutines; each client connection adds one pair of copiers.
type Balancer struct {
	opts  Options
	ln    net.Listener
	check *checker

	mu       sync.Mutex
	backends []*backend // in the order SetBackends gave
	current  string     // the backend the last connection went to
	closed   bool

	kick chan struct{} // the health loop looks at the backends now
	stop chan struct{}
	wg   sync.WaitGroup
}

// backend is one apiserver and the connections spliced to it.
type backend struct {
	addr     string
	healthy  bool
	checked  bool // at least one check finished
	failures int
	conns    map[*splice]struct{}
}

// Status is what the balancer knows of one backend.
type Status struct {
	Addr        string `json:"addr"`
	Healthy     bool   `json:"healthy"`
	Checked     bool   `json:"checked"`
	Connections int    `json:"connections"`
}

// Start listens on o.Listen and starts serving. It has no backends until
// SetBackends: connections made before are closed at once.
func Start(o Options) (*Balancer, error) {
	o.defaults()
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, fmt.Errorf("node-local apiserver endpoint: listen on %s: %w (is another knode agent running on this host?)", o.Listen, err)
	}
	b := &Balancer{opts: o, ln: ln, check: newChecker(o.Roots, o.Timeout),
		kick: make(chan struct{}, 1), stop: make(chan struct{})}
	b.wg.Add(2)
	go b.acceptLoop()
	go b.healthLoop()
	return b, nil
}

// Addr is the address the endpoint listens on.
func (b *Balancer) Addr() net.Addr { return b.ln.Addr() }

// URL is the endpoint as kubeconfigs name it.
func (b *Balancer) URL() string { return "https://" + b.ln.Addr().String() }

// SetBackends replaces the set of apiservers (host:port). Backends kept keep
// their health and connections; a removed backend's connections are cut so
// that their clients reconnect to one still in the set. An empty set is
// ignored: the masters never all leave, and a transient empty view must not
// cut every client off.
func (b *Balancer) SetBackends(addrs []string) {
	if len(addrs) == 0 {
		return
	}
	b.mu.Lock()
	var next []*backend
	var cut []*splice
	added := false
	for _, a := range addrs {
		if slices.ContainsFunc(next, func(be *backend) bool { return be.addr == a }) {
			continue
		}
		if i := slices.IndexFunc(b.backends, func(be *backend) bool { return be.addr == a }); i >= 0 {
			next = append(next, b.backends[i])
			continue
		}
		next = append(next, &backend{addr: a, conns: map[*splice]struct{}{}})
		added = true
	}
	for _, old := range b.backends {
		if !slices.Contains(next, old) {
			b.opts.Logger.Info("apiserver endpoint: backend removed", "backend", old.addr, "connections", len(old.conns))
			for s := range old.conns {
				cut = append(cut, s)
			}
		}
	}
	b.backends = next
	b.mu.Unlock()
	for _, s := range cut {
		s.close()
	}
	if added {
		b.poke()
	}
}

// Backends reports every backend's state, in the order they were given.
func (b *Balancer) Backends() []Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Status, 0, len(b.backends))
	for _, be := range b.backends {
		out = append(out, Status{Addr: be.addr, Healthy: be.healthy, Checked: be.checked, Connections: len(be.conns)})
	}
	return out
}

// Stop closes the endpoint and every connection through it, and waits for
// its goroutines. It is safe to call more than once.
func (b *Balancer) Stop() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	var all []*splice
	for _, be := range b.backends {
		for s := range be.conns {
			all = append(all, s)
		}
	}
	b.mu.Unlock()
	close(b.stop)
	b.ln.Close()
	for _, s := range all {
		s.close()
	}
	b.wg.Wait()
	b.check.close()
}

func (b *Balancer) poke() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// candidates orders the backends for a new connection: healthy ones first
// (the preferred one ahead of the others), then those not checked yet, then
// the unhealthy ones, so that a client still gets through while every check
// fails (a master's kubelet starts before its apiserver is ready, and the
// first master has no other).
func (b *Balancer) candidates() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	rank := func(be *backend) int {
		switch {
		case be.healthy && be.addr == b.opts.Prefer:
			return 0
		case be.healthy:
			return 1
		case !be.checked:
			return 2
		default:
			return 3
		}
	}
	bs := slices.Clone(b.backends)
	slices.SortStableFunc(bs, func(x, y *backend) int { return rank(x) - rank(y) })
	out := make([]string, len(bs))
	for i, be := range bs {
		out[i] = be.addr
	}
	return out
}

// errGone says the backend left the set (or the balancer stopped) while a
// connection to it was being made.
var errGone = errors.New("backend no longer in the set")

// track registers s under its backend, unless that backend is gone.
func (b *Balancer) track(addr string, s *splice) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errGone
	}
	for _, be := range b.backends {
		if be.addr == addr {
			be.conns[s] = struct{}{}
			if b.current != addr {
				b.opts.Logger.Info("apiserver endpoint: connections go to a new backend", "backend", addr, "previous", b.current)
				b.current = addr
			}
			return nil
		}
	}
	return errGone
}

func (b *Balancer) untrack(addr string, s *splice) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, be := range b.backends {
		if be.addr == addr {
			delete(be.conns, s)
		}
	}
}
