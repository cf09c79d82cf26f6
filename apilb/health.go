package apilb

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// checker asks one apiserver whether it is ready: GET /readyz, which the
// apiserver serves to anonymous clients, over TLS verified against the
// cluster CA (the backend's address must be in its certificate).
type checker struct {
	tr      *http.Transport
	timeout time.Duration
}

func newChecker(roots *x509.CertPool, timeout time.Duration) *checker {
	return &checker{timeout: timeout, tr: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     30 * time.Second,
	}}
}

// ready reports nil when the apiserver at addr (host:port) answers /readyz
// with 200 within the timeout.
func (c *checker) ready(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/readyz", nil)
	if err != nil {
		return fmt.Errorf("readyz request for %s: %w", addr, err)
	}
	resp, err := c.tr.RoundTrip(req)
	if err != nil {
		// A dead backend may hold an idle connection that will never
		// answer: start afresh next time.
		c.tr.CloseIdleConnections()
		return fmt.Errorf("GET https://%s/readyz: %w", addr, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET https://%s/readyz: %s", addr, resp.Status)
	}
	return nil
}

func (c *checker) close() { c.tr.CloseIdleConnections() }

// healthLoop checks every backend each Interval (at once when SetBackends
// adds one) until Stop.
func (b *Balancer) healthLoop() {
	defer b.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-b.stop
		cancel()
	}()
	t := time.NewTicker(b.opts.Interval)
	defer t.Stop()
	for {
		b.checkAll(ctx)
		select {
		case <-b.stop:
			return
		case <-t.C:
		case <-b.kick:
		}
	}
}

// checkAll checks the backends in parallel and applies the results.
func (b *Balancer) checkAll(ctx context.Context) {
	b.mu.Lock()
	addrs := make([]string, len(b.backends))
	for i, be := range b.backends {
		addrs[i] = be.addr
	}
	b.mu.Unlock()
	errs := make([]error, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Go(func() { errs[i] = b.check.ready(ctx, a) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	for _, s := range b.record(addrs, errs) {
		s.close()
	}
}

// record applies check results and returns the connections to cut: those on
// an unhealthy backend, once another backend is healthy (with none healthy,
// cutting would only make every client retry against the same dead ends).
func (b *Balancer) record(addrs []string, errs []error) []*splice {
	b.mu.Lock()
	defer b.mu.Unlock()
	byAddr := map[string]*backend{}
	for _, be := range b.backends {
		byAddr[be.addr] = be
	}
	for i, a := range addrs {
		be := byAddr[a]
		if be == nil {
			continue // removed meanwhile
		}
		was, first := be.healthy, !be.checked
		be.checked = true
		if errs[i] == nil {
			be.failures, be.healthy = 0, true
		} else {
			be.failures++
			if be.failures >= b.opts.Failures || first {
				be.healthy = false
			}
		}
		switch {
		case be.healthy && !was:
			b.opts.Logger.Info("apiserver endpoint: backend healthy", "backend", a)
		case !be.healthy && (was || first):
			b.opts.Logger.Warn("apiserver endpoint: backend unhealthy", "backend", a, "err", errs[i])
		}
	}
	anyHealthy := false
	for _, be := range b.backends {
		anyHealthy = anyHealthy || be.healthy
	}
	if !anyHealthy {
		return nil
	}
	var cut []*splice
	for _, be := range b.backends {
		if be.healthy || len(be.conns) == 0 {
			continue
		}
		b.opts.Logger.Info("apiserver endpoint: cutting connections to an unhealthy backend", "backend", be.addr, "connections", len(be.conns))
		for s := range be.conns {
			cut = append(cut, s)
			delete(be.conns, s)
		}
	}
	return cut
}
