// Package health checks this node's own components, each through its own
// interface (systemd over D-Bus, the kubelet's and the control plane's health
// endpoints, the apiserver's Node object, the certificates on disk), and
// summarises the result as a gossip.Health record.
package health

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"

	"knode.dev/knode/gossip"
	"knode.dev/knode/kubeapi"
	"knode.dev/knode/manifests"
)

// Units reports systemd units' states.
type Units interface {
	// ActiveState is the unit's ActiveState and SubState ("active",
	// "running"); a unit systemd does not know is "inactive", "dead".
	ActiveState(ctx context.Context, unit string) (active, sub string, err error)
}

// Endpoints are where the checks look. Defaults() has the node's real ones;
// tests point them at their own servers.
type Endpoints struct {
	ContainerdSocket  string // unix socket path
	KubeletHealthz    string // http URL
	EtcdHealth        string // http URL (etcd's metrics listener)
	APIServerReadyz   string // https URL, verified against the CA
	ControllerManager string // https URL on loopback
	Scheduler         string // https URL on loopback
}

// Defaults are the endpoints knode's rendered configuration sets up.
func Defaults() Endpoints {
	return Endpoints{
		ContainerdSocket:  "/run/containerd/containerd.sock",
		KubeletHealthz:    "http://127.0.0.1:10248/healthz",
		EtcdHealth:        "http://127.0.0.1:2381/health?serializable=false",
		APIServerReadyz:   "https://127.0.0.1:6443/readyz",
		ControllerManager: "https://127.0.0.1:10257/healthz",
		Scheduler:         "https://127.0.0.1:10259/healthz",
	}
}

// Probe checks the node it runs on.
type Probe struct {
	Units     Units
	Endpoints Endpoints
	// Credentials is the kubelet's kubeconfig: it reads this node's Node
	// object, and its CA verifies the local apiserver's certificate.
	Credentials func() (manifests.Kubeconfig, error)
	// Certs lists the certificates whose expiry counts.
	Certs func() []CertFile
	// Timeout bounds each check (default 2 s).
	Timeout time.Duration
	// NodeEvery spaces out reads of the Node object (0: every check): the
	// kubelet reports its status every 10 s, and every node's agent reading
	// it every 2 s would load the apiserver for nothing.
	NodeEvery time.Duration

	// The last Node read, reused for NodeEvery; Check runs in one goroutine
	// at a time (the agent's health loop).
	nodeAt   time.Time
	nodeErr  error
	versions [2]string // kubelet, container runtime

	// Connections kept between checks, so that a check every 2 s is not
	// three TLS handshakes and three new TCP connections: plain HTTP, the
	// loopback endpoints with self-signed certificates, and the apiserver
	// with the kubelet's credential (made again when the credential changes).
	plain, loop *http.Transport
	api         *http.Transport
	apiClient   *kubeapi.Client
	apiErr      error // why apiClient could not be made
	apiFor      manifests.Kubeconfig
}

// NewProbe is the probe of a node configured by knode: systemd over D-Bus,
// the default endpoints, the kubelet's kubeconfig, the certificates under
// pkiDirs.
func NewProbe(kubeconfig string, pkiDirs ...string) *Probe {
	var kc kubeconfigCache
	var certs certCache
	return &Probe{Units: &Systemd{}, Endpoints: Defaults(),
		Credentials: func() (manifests.Kubeconfig, error) { return kc.read(kubeconfig) },
		Certs:       func() []CertFile { return certs.in(pkiDirs...) },
		NodeEvery:   10 * time.Second}
}

// kubeconfigCache reads a kubeconfig again only when its size or
// modification time changed (a renewal rewrites it): it is not parsed again
// for every check (86 µs against 1.4 µs, BenchmarkKubeconfig).
type kubeconfigCache struct {
	size int64
	mod  time.Time
	kc   manifests.Kubeconfig
	ok   bool
}

func (c *kubeconfigCache) read(name string) (manifests.Kubeconfig, error) {
	info, err := os.Stat(name)
	if err != nil {
		return manifests.Kubeconfig{}, err
	}
	if c.ok && info.Size() == c.size && info.ModTime().Equal(c.mod) {
		return c.kc, nil
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return manifests.Kubeconfig{}, err
	}
	kc, err := manifests.ParseKubeconfig(data)
	if err != nil {
		c.ok = false
		return kc, err
	}
	*c = kubeconfigCache{size: info.Size(), mod: info.ModTime(), kc: kc, ok: true}
	return kc, nil
}

// CertFile is one certificate on disk.
type CertFile struct {
	Name     string
	NotAfter time.Time
}

// Check runs every check that applies to this node (masters run the control
// plane's too) and returns the summary, unsigned and without a generation.
func (p *Probe) Check(ctx context.Context, node string, master bool) gossip.Health {
	h := gossip.Health{Name: node}
	add := func(c gossip.Component, err error) {
		ck := gossip.Check{What: c, OK: err == nil}
		if err != nil {
			ck.Detail = detail(err)
		}
		h.Checks = append(h.Checks, ck)
	}
	p.transports()
	add(gossip.CompContainerd, p.all(ctx, p.unit("containerd.service"), p.socket(p.Endpoints.ContainerdSocket)))
	add(gossip.CompKubelet, p.all(ctx, p.unit("kubelet.service"), p.httpOK(p.Endpoints.KubeletHealthz, p.plain)))
	add(gossip.CompKubeProxy, p.all(ctx, p.unit("kube-proxy.service")))
	kc, kcErr := p.credentials()
	if kcErr != nil {
		add(gossip.CompNodeReady, kcErr)
	} else {
		p.useCredential(kc)
		if p.NodeEvery == 0 || time.Since(p.nodeAt) >= p.NodeEvery {
			p.nodeErr = p.node(ctx, node, &p.versions)
			p.nodeAt = time.Now()
		}
		add(gossip.CompNodeReady, p.nodeErr)
		h.KubeletVersion, h.RuntimeVersion = p.versions[0], p.versions[1]
	}
	if master {
		add(gossip.CompEtcd, p.all(ctx, p.etcd))
		if kcErr != nil {
			add(gossip.CompAPIServer, kcErr)
		} else {
			add(gossip.CompAPIServer, p.all(ctx, p.httpOK(p.Endpoints.APIServerReadyz, p.api)))
		}
		add(gossip.CompControllerManager, p.all(ctx, p.httpOK(p.Endpoints.ControllerManager, p.loop)))
		add(gossip.CompScheduler, p.all(ctx, p.httpOK(p.Endpoints.Scheduler, p.loop)))
	}
	if p.Certs != nil {
		for _, c := range p.Certs() {
			if exp := c.NotAfter.Unix(); h.CertExpiry == 0 || exp < h.CertExpiry {
				h.CertExpiry, h.CertName = exp, truncate(c.Name, 64)
			}
		}
	}
	return h
}

type check func(ctx context.Context) error

// all runs checks in order under the probe's timeout; the first failure counts.
func (p *Probe) all(ctx context.Context, checks ...check) error {
	timeout := p.Timeout
	if timeout == 0 {
		timeout = 2 * time.Second
	}
	for _, c := range checks {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := c(cctx)
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

func (p *Probe) unit(name string) check {
	return func(ctx context.Context) error {
		if p.Units == nil {
			return fmt.Errorf("%s: no systemd connection", name)
		}
		active, sub, err := p.Units.ActiveState(ctx, name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if active != "active" {
			return fmt.Errorf("%s %s (%s)", name, active, sub)
		}
		return nil
	}
}

func (p *Probe) socket(path string) check {
	return func(ctx context.Context) error {
		c, err := (&net.Dialer{}).DialContext(ctx, "unix", path)
		if err != nil {
			return fmt.Errorf("socket %s: %w", path, err)
		}
		return c.Close()
	}
}

// transports makes the connections kept between checks, once.
func (p *Probe) transports() {
	if p.plain != nil {
		return
	}
	p.plain = kept(nil)
	// The controller-manager and scheduler serve /healthz with a
	// self-signed certificate made at start: like the kubelet's liveness
	// probe, on loopback only, the certificate is not checked.
	p.loop = kept(&tls.Config{InsecureSkipVerify: true}) //nolint:gosec // loopback health endpoint, see above
}

// kept is a transport that keeps one connection per endpoint between checks.
func kept(c *tls.Config) *http.Transport {
	return &http.Transport{TLSClientConfig: c, MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute}
}

// useCredential points the apiserver's checks at kc: the connections made
// with an earlier credential (before a renewal) are closed.
func (p *Probe) useCredential(kc manifests.Kubeconfig) {
	if p.api != nil && kc.Server == p.apiFor.Server && bytes.Equal(kc.CAPEM, p.apiFor.CAPEM) &&
		bytes.Equal(kc.CertPEM, p.apiFor.CertPEM) && bytes.Equal(kc.KeyPEM, p.apiFor.KeyPEM) {
		return
	}
	p.closeAPI()
	p.api = kept(apiTLS(kc))
	p.apiFor = kc
	p.apiClient, p.apiErr = kubeapi.New(kc.Server, kc.CAPEM, kc.CertPEM, kc.KeyPEM)
}

func (p *Probe) closeAPI() {
	if p.api != nil {
		p.api.CloseIdleConnections()
	}
	if p.apiClient != nil {
		p.apiClient.Close()
		p.apiClient = nil
	}
}

// Close drops the connections kept between checks.
func (p *Probe) Close() {
	p.closeAPI()
	for _, t := range []*http.Transport{p.plain, p.loop} {
		if t != nil {
			t.CloseIdleConnections()
		}
	}
}

// httpOK holds when url answers 200 through tr.
func (p *Probe) httpOK(url string, tr *http.Transport) check {
	return func(ctx context.Context) error {
		_, err := get(ctx, url, tr)
		return err
	}
}

// get fetches url through tr, which keeps the connection for the next check;
// after a failure it drops it, so that a hung or restarted endpoint is asked
// afresh next time.
func get(ctx context.Context, url string, tr *http.Transport) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("%s: %w", shortURL(url), unwrapURL(err))
	}
	defer resp.Body.Close()
	var body [512]byte
	n, _ := io.ReadFull(resp.Body, body[:])
	// Drain a short rest so the connection can be kept.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d", shortURL(url), resp.StatusCode)
	}
	return body[:n], nil
}

// etcd asks the local member's health endpoint, which answers true only
// when the member is up and the cluster has a leader (quorum).
func (p *Probe) etcd(ctx context.Context) error {
	body, err := get(ctx, p.Endpoints.EtcdHealth, p.plain)
	if err != nil {
		return err
	}
	var st struct {
		Health string `json:"health"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("etcd /health: %w", err)
	}
	if st.Health != "true" {
		return fmt.Errorf("etcd unhealthy: %s", st.Reason)
	}
	return nil
}

func (p *Probe) credentials() (manifests.Kubeconfig, error) {
	if p.Credentials == nil {
		return manifests.Kubeconfig{}, errors.New("no kubeconfig")
	}
	kc, err := p.Credentials()
	if err != nil {
		return kc, fmt.Errorf("kubelet kubeconfig: %w", err)
	}
	return kc, nil
}

// apiTLS verifies the apiserver against the cluster CA and presents the
// kubelet's certificate.
func apiTLS(kc manifests.Kubeconfig) *tls.Config {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(kc.CAPEM)
	c := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert, err := tls.X509KeyPair(kc.CertPEM, kc.KeyPEM); err == nil {
		c.Certificates = []tls.Certificate{cert}
	}
	return c
}

// node reads this node's Node object through the apiserver the kubeconfig
// names (useCredential): Ready, and the versions it reports.
func (p *Probe) node(ctx context.Context, node string, versions *[2]string) error {
	api := p.apiClient
	if api == nil {
		return fmt.Errorf("kubelet kubeconfig: %w", p.apiErr)
	}
	var n kubeapi.Node
	err := p.all(ctx, func(ctx context.Context) error {
		code, err := api.Get(ctx, "/api/v1/nodes/"+node, &n)
		switch {
		case err != nil:
			api.Close() // a hung connection is not asked again
			return fmt.Errorf("apiserver: %w", err)
		case code == http.StatusNotFound:
			return fmt.Errorf("not registered: no Node object %s", node)
		case code != http.StatusOK:
			return fmt.Errorf("get Node %s: HTTP %d", node, code)
		}
		return nil
	})
	if err != nil {
		return err
	}
	versions[0] = truncate(n.Status.NodeInfo.KubeletVersion, 64)
	versions[1] = truncate(n.Status.NodeInfo.ContainerRuntimeVersion, 64)
	if ok, why := n.Ready(); !ok {
		return fmt.Errorf("%s", why)
	}
	return nil
}

// detail is an error as one short printable line.
func detail(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	s = strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, s)
	return truncate(s, 96)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xc0 == 0x80 { // not inside a UTF-8 sequence
		n--
	}
	return s[:n]
}

func shortURL(u string) string {
	u = strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
	if i := strings.IndexByte(u, '?'); i >= 0 {
		u = u[:i]
	}
	return u
}

// unwrapURL drops net/http's "Get <url>:" prefix (the URL is named already).
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
