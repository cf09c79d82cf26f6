package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"knode.dev/knode/datadir"
	"knode.dev/knode/gossip"
	"knode.dev/knode/pki"
	"knode.dev/knode/roles"
)

// Workers hold no CA key, so their client certificates (kubelet as
// system:node:<name>, kube-proxy) and their kubelet's serving certificate are
// signed by a master: the worker keeps its keys and sends certificate
// requests in a letter; a master signs them for the sender's name only, and
// the serving certificate only for the address the sender's decision binds.

// Credential names, also their file names under creds/ in the data directory.
const (
	credKubelet        = "kubelet"
	credKubeProxy      = "kube-proxy"
	credKubeletServing = "kubelet-serving"
)

// credKinds are the credentials a worker obtains from a master.
func credKinds() []string { return []string{credKubelet, credKubeProxy, credKubeletServing} }

// credSpec is what a master signs for the node name, whose decision binds
// it to addr.
func credSpec(kind, node string, addr netip.Addr) (pki.CertSpec, bool) {
	switch kind {
	case credKubelet:
		return pki.KubeletClient(node), true
	case credKubeProxy:
		return pki.CertSpec{CommonName: "system:kube-proxy", Client: true}, true
	case credKubeletServing:
		if !addr.IsValid() {
			return pki.CertSpec{}, false
		}
		return pki.KubeletServing(node, addr), true
	}
	return pki.CertSpec{}, false
}

// Credentials returns this node's kubelet and kube-proxy client credentials
// and its kubelet serving credential: from the data directory when valid and
// not due for renewal (pki.Due), else signed by a master (waiting for one
// until ctx ends). Masters return nil: the PKI phase issues theirs locally.
func (a *Agent) Credentials(ctx context.Context) (map[string]*pki.Credential, error) {
	if a.HasSecrets() {
		return nil, nil
	}
	snap := a.state.Snapshot()
	ca, err := pki.LoadCA(snap.Cluster.CACert, nil)
	if err != nil {
		return nil, err
	}
	addr := snap.Assignments[a.id.Name].Addr
	out, missing := map[string]*pki.Credential{}, map[string][]byte{}
	keys := map[string][]byte{}
	for _, kind := range credKinds() {
		spec, ok := credSpec(kind, a.id.Name, addr)
		if !ok {
			return nil, fmt.Errorf("node %s has no address bound by a decision yet: cannot ask for its %s certificate", a.id.Name, kind)
		}
		if c, err := a.loadCred(kind); err == nil && pki.Verify(ca, c, spec, a.now(), 0) == nil && !pki.Due(ca, c.CertPEM, a.now()) {
			out[kind] = c
			continue
		}
		csr, key, err := pki.NewCSR(spec)
		if err != nil {
			return nil, err
		}
		missing[kind], keys[kind] = csr, key
	}
	if len(missing) == 0 {
		return out, nil
	}
	body, _ := json.Marshal(missing)
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		a.requestCerts(body)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no master signed this node's certificates (is a master alive? see `knode status`): %w", ctx.Err())
		case certs := <-a.certs:
			for kind, key := range keys {
				cert, ok := certs[kind]
				if !ok {
					continue
				}
				c := &pki.Credential{CertPEM: cert, KeyPEM: key}
				spec, _ := credSpec(kind, a.id.Name, addr)
				err := pki.Verify(ca, c, spec, a.now(), 0)
				if err == nil && pki.Due(ca, cert, a.now()) {
					err = errors.New("already due for renewal: are this node's and the master's clocks apart?")
				}
				if err != nil {
					a.log.Warn("certificate from a master rejected", "kind", kind, "err", err)
					continue
				}
				if err := a.saveCred(kind, c); err != nil {
					return nil, err
				}
				out[kind] = c
				delete(keys, kind)
			}
			if len(keys) == 0 {
				return out, nil
			}
			// Ask again at the next tick, not at once: an answer refused
			// here (clocks apart) must not turn into a request loop.
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("no master signed this node's certificates acceptably (see the warnings above): %w", ctx.Err())
			case <-t.C:
			}
		case <-t.C:
		}
	}
}

// requestCerts sends the requests to one live master holding the CA key.
func (a *Agent) requestCerts(body []byte) {
	snap, alive := a.state.Snapshot(), a.g.Alive()
	for _, m := range roles.Masters(snap) {
		if n := snap.Nodes[m]; alive[m] && n.HasSecrets {
			if err := a.g.Send(gossip.Letter{Kind: gossip.LetterCSR, To: m, Body: body}); err != nil {
				a.log.Warn("send certificate requests", "to", m, "err", err)
				continue
			}
			return
		}
	}
}

// signRequests signs a node's requests, each for the sender's own name (the
// letter's verified author) and the address its decision binds.
func (a *Agent) signRequests(l gossip.Letter) {
	a.mu.Lock()
	sec := a.secrets
	a.mu.Unlock()
	if sec == nil {
		return
	}
	if ok, first := a.csrs.allow(l.From, time.Now()); !ok {
		if first {
			a.log.Warn("certificate requests refused: too many from this node", "from", l.From, "burst", csrBurst, "every", csrEvery)
		}
		return
	}
	snap := a.state.Snapshot()
	ca, err := pki.LoadCA(snap.Cluster.CACert, sec.CAKey)
	if err != nil {
		a.log.Error("load CA", "err", err)
		return
	}
	var reqs map[string][]byte
	if err := json.Unmarshal(l.Body, &reqs); err != nil {
		return
	}
	certs := signFor(ca, l.From, snap.Assignments[l.From].Addr, reqs, time.Now(), a.opts.CertLifetime, a.log)
	body, _ := json.Marshal(certs)
	if err := a.g.Send(gossip.Letter{Kind: gossip.LetterCert, To: l.From, Body: body}); err != nil {
		a.log.Warn("send certificates", "to", l.From, "err", err)
		return
	}
	a.log.Info("signed certificates", "for", l.From, "count", len(certs))
}

// signFor signs the certificate requests reqs (kind -> CSR) of node from,
// whose decision binds it to addr: each for that name and address only, for
// lifetime (0: the default). A request naming anyone else is refused.
func signFor(ca *pki.CA, from string, addr netip.Addr, reqs map[string][]byte, now time.Time, lifetime time.Duration, log *slog.Logger) map[string][]byte {
	certs := map[string][]byte{}
	for kind, csr := range reqs {
		spec, ok := credSpec(kind, from, addr)
		if !ok {
			continue
		}
		spec.Validity = lifetime
		cert, err := pki.SignCSR(ca, csr, spec, now)
		if err != nil {
			log.Warn("refused certificate request", "from", from, "kind", kind, "err", err)
			continue
		}
		certs[kind] = cert
	}
	return certs
}

func (a *Agent) receiveCerts(l gossip.Letter) {
	var certs map[string][]byte
	if json.Unmarshal(l.Body, &certs) != nil {
		return
	}
	select {
	case a.certs <- certs:
	default:
	}
}

func (a *Agent) loadCred(kind string) (*pki.Credential, error) { return loadCred(a.opts.Dir, kind) }

func loadCred(dir datadir.Dir, kind string) (*pki.Credential, error) {
	cert, err := dir.ReadFile(datadir.CredsDir + "/" + kind + ".crt")
	if err != nil {
		return nil, err
	}
	key, err := dir.ReadFile(datadir.CredsDir + "/" + kind + ".key")
	if err != nil {
		return nil, err
	}
	return &pki.Credential{CertPEM: cert, KeyPEM: key}, nil
}

func (a *Agent) saveCred(kind string, c *pki.Credential) error {
	if err := a.opts.Dir.Ensure(); err != nil {
		return err
	}
	if err := a.opts.Dir.WriteFile(datadir.CredsDir+"/"+kind+".key", c.KeyPEM); err != nil {
		return err
	}
	return a.opts.Dir.WriteFile(datadir.CredsDir+"/"+kind+".crt", c.CertPEM)
}
