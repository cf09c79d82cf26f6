package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// PeerTLS names a node's PEM files for the mirror's peer traffic: the
// cluster CA, the serving certificate (the kubelet's: the node's agreed
// address in its SANs) and the client certificate (the kubelet's:
// system:node:<name>). Files are read at each handshake, so renewed
// certificates are used without a restart.
type PeerTLS struct {
	CA                      string
	ServingCert, ServingKey string
	ClientCert, ClientKey   string
}

// nodePrefix is the common name of a node's client certificate.
const nodePrefix = "system:node:"

func (p PeerTLS) pool() (*x509.CertPool, error) {
	b, err := os.ReadFile(p.CA)
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("cluster CA %s: no certificate", p.CA)
	}
	return pool, nil
}

// ServerConfig requires a client certificate the cluster CA signed.
func (p PeerTLS) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			pool, err := p.pool()
			if err != nil {
				return nil, err
			}
			cert, err := tls.LoadX509KeyPair(p.ServingCert, p.ServingKey)
			if err != nil {
				return nil, fmt.Errorf("serving certificate: %w", err)
			}
			return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
				ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}, nil
		},
	}
}

// Client is an HTTP client for peers: it presents this node's client
// certificate and trusts only servers the cluster CA signed for the address
// dialled. The files are read at each handshake (they may appear after the
// agent starts, and are renewed), so Go's own verification, which needs
// its roots up front, is replaced by the same check (verifyServer).
func (p PeerTLS) Client() *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			cfg := &tls.Config{MinVersion: tls.VersionTLS13,
				InsecureSkipVerify: true, // verifyServer checks the chain and the address
				VerifyConnection:   func(cs tls.ConnectionState) error { return p.verifyServer(cs, host) },
				GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
					c, err := tls.LoadX509KeyPair(p.ClientCert, p.ClientKey)
					if err != nil {
						return nil, fmt.Errorf("client certificate: %w", err)
					}
					return &c, nil
				}}
			return (&tls.Dialer{NetDialer: dialer, Config: cfg}).DialContext(ctx, network, addr)
		},
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
		IdleConnTimeout:       time.Minute,
		MaxIdleConnsPerHost:   4,
	}
	return &http.Client{Transport: tr}
}

// verifyServer checks a peer's certificate chain against the cluster CA and
// its names against host, the address dialled.
func (p PeerTLS) verifyServer(cs tls.ConnectionState, host string) error {
	pool, err := p.pool()
	if err != nil {
		return err
	}
	if len(cs.PeerCertificates) == 0 {
		return errors.New("peer sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err = cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter,
		DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}

// PeerHandler serves this node's store to members only: the client
// certificate must name a node (system:node:<name>) that member accepts
// (bound, not removed). It serves the store alone, never the mirror: a
// request never travels on to a third node.
func PeerHandler(store *Store, member func(name string) bool, log *slog.Logger) *Served {
	return &Served{next: Handler(store, log), member: member, log: log, to: map[string]int64{}}
}

// Served is the peer endpoint; it counts the bytes it served to each peer.
type Served struct {
	next   http.Handler
	member func(string) bool
	log    *slog.Logger
	mu     sync.Mutex
	to     map[string]int64
}

func (s *Served) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, err := peerName(r)
	if err == nil && !s.member(name) {
		err = fmt.Errorf("%s is not a member of this cluster", name)
	}
	if err != nil {
		s.log.Warn("peer refused", "remote", r.RemoteAddr, "err", err)
		apiError(w, http.StatusForbidden, "DENIED", err.Error())
		return
	}
	cw := &countingWriter{ResponseWriter: w}
	defer func() {
		s.mu.Lock()
		s.to[name] += cw.n
		s.mu.Unlock()
	}()
	s.next.ServeHTTP(cw, r)
}

// To returns the bytes served to each peer since start.
func (s *Served) To() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.to))
	for k, v := range s.to {
		out[k] = v
	}
	return out
}

// peerName is the node name of a request's verified client certificate.
func peerName(r *http.Request) (string, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return "", errors.New("no verified client certificate")
	}
	cn := r.TLS.VerifiedChains[0][0].Subject.CommonName
	name, ok := strings.CutPrefix(cn, nodePrefix)
	if !ok || name == "" {
		return "", fmt.Errorf("client certificate %q is not a node's", cn)
	}
	return name, nil
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}
