package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"knode.dev/knode/manifests"
)

// The waits at the end of init and join: each is polled until it holds and
// becomes a row of the timing table. They read the product's own state (the
// kubelet's pod logs, the apiserver through the node's kubeconfigs), never a
// harness's.

// pollEvery is how often a wait looks again: often enough that the table
// measures the cluster, not the poll.
const pollEvery = 200 * time.Millisecond

// wait is one condition to wait for.
type wait struct {
	name string
	// check reports whether the condition holds; last describes what it saw.
	check func(ctx context.Context) (ok bool, last string)
}

// runWaits polls every condition at once, each until it holds, and records
// them in the order they came true: a row's seconds are the time since the
// previous row (or since the waits began), its "at" when it was seen. The
// returned error names the conditions that did not hold before ctx ended,
// with what each saw last.
func runWaits(ctx context.Context, p *progress, ws []wait) error {
	type result struct {
		name string
		at   time.Time
		err  error
	}
	begin := time.Now()
	results := make(chan result, len(ws))
	for _, w := range ws {
		go func() {
			var last string
			for {
				ok, seen := w.check(ctx)
				if seen != "" {
					last = seen
				}
				if ok {
					results <- result{name: w.name, at: time.Now()}
					return
				}
				select {
				case <-ctx.Done():
					if last == "" {
						last = "nothing yet"
					}
					results <- result{name: w.name, err: fmt.Errorf("%s: not within the wait (last seen: %s)", w.name, last)}
					return
				case <-time.After(pollEvery):
				}
			}
		}()
	}
	prev := begin
	var errs []error
	for range ws {
		r := <-results
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		p.Note("%s (%s)", r.name, round(r.at.Sub(begin)))
		p.Row(r.name, r.at.Sub(prev), r.at)
		prev = r.at
	}
	return errors.Join(errs...)
}

// staticPodsStarted holds once the kubelet has started a container for each
// control-plane static pod of node: containerd creates a container's log
// file under /var/log/pods when it starts it.
func staticPodsStarted(node string) wait {
	pods := []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}
	return wait{name: "static pods started", check: func(context.Context) (bool, string) {
		var missing []string
		for _, pod := range pods {
			logs, _ := filepath.Glob(fmt.Sprintf("/var/log/pods/kube-system_%s-%s_*/%s/*.log", pod, node, pod))
			if len(logs) == 0 {
				missing = append(missing, pod)
			}
		}
		if len(missing) > 0 {
			return false, "not started: " + strings.Join(missing, ", ")
		}
		return true, ""
	}}
}

// apiServing holds once the apiserver the kubeconfig names answers /readyz.
func apiServing(api *apiClient) wait {
	return wait{name: "apiserver serving", check: func(ctx context.Context) (bool, string) {
		code, err := api.get(ctx, "/readyz", nil)
		if err != nil {
			return false, err.Error()
		}
		return code == http.StatusOK, fmt.Sprintf("/readyz: HTTP %d", code)
	}}
}

// nodeObject is the part of a Node the waits read.
type nodeObject struct {
	Spec struct {
		PodCIDR string `json:"podCIDR"`
	} `json:"spec"`
	Status struct {
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
	} `json:"status"`
}

func (n nodeObject) ready() bool {
	for _, c := range n.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

// nodeWaits are the waits on this node's Node object, read with the kubelet's
// own credential: registered, Ready, and carrying the agreed pod CIDR.
func nodeWaits(api *apiClient, node, podCIDR string) []wait {
	get := func(ctx context.Context) (nodeObject, bool, string) {
		var n nodeObject
		code, err := api.get(ctx, "/api/v1/nodes/"+node, &n)
		if err != nil {
			return n, false, err.Error()
		}
		return n, code == http.StatusOK, fmt.Sprintf("node %s: HTTP %d", node, code)
	}
	return []wait{
		{name: "node registered", check: func(ctx context.Context) (bool, string) {
			_, ok, last := get(ctx)
			return ok, last
		}},
		{name: "node Ready", check: func(ctx context.Context) (bool, string) {
			n, ok, last := get(ctx)
			if ok {
				last = "Ready condition not True"
			}
			return ok && n.ready(), last
		}},
		{name: "podCIDR set", check: func(ctx context.Context) (bool, string) {
			n, ok, last := get(ctx)
			if ok {
				last = fmt.Sprintf("podCIDR %q, want %s", n.Spec.PodCIDR, podCIDR)
			}
			return ok && n.Spec.PodCIDR == podCIDR, last
		}},
	}
}

// coreDNSReady holds once the CoreDNS deployment has a ready replica.
func coreDNSReady(api *apiClient) wait {
	return wait{name: "CoreDNS ready", check: func(ctx context.Context) (bool, string) {
		var d struct {
			Status struct {
				ReadyReplicas int `json:"readyReplicas"`
			} `json:"status"`
		}
		code, err := api.get(ctx, "/apis/apps/v1/namespaces/kube-system/deployments/coredns", &d)
		if err != nil {
			return false, err.Error()
		}
		if code != http.StatusOK {
			return false, fmt.Sprintf("deployment coredns: HTTP %d", code)
		}
		return d.Status.ReadyReplicas > 0, "deployment coredns: no ready replica"
	}}
}

// apiClient reads from the apiserver with the credential a kubeconfig
// embeds (the ones knode renders: one cluster, one user).
type apiClient struct {
	server string
	http   *http.Client
}

func newAPIClient(kubeconfig string) (*apiClient, error) {
	data, err := os.ReadFile(kubeconfig)
	if err != nil {
		return nil, err
	}
	kc, err := manifests.ParseKubeconfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kubeconfig, err)
	}
	if !strings.HasPrefix(kc.Server, "https://") {
		return nil, fmt.Errorf("%s: server %q is not https", kubeconfig, kc.Server)
	}
	cert, err := tls.X509KeyPair(kc.CertPEM, kc.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: user %s: %w", kubeconfig, kc.User, err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(kc.CAPEM) {
		return nil, fmt.Errorf("%s: cluster %s: no certificate in certificate-authority-data", kubeconfig, kc.Cluster)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	return &apiClient{server: kc.Server, http: &http.Client{Transport: tr, Timeout: 5 * time.Second}}, nil
}

// get fetches path and decodes a 200 answer into v (when not nil).
func (a *apiClient) get(ctx context.Context, path string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.server+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		var uerr interface{ Unwrap() error }
		if errors.As(err, &uerr) {
			err = uerr.Unwrap()
		}
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s: %w", path, err)
		}
	}
	return resp.StatusCode, nil
}

// close drops idle connections.
func (a *apiClient) close() { a.http.CloseIdleConnections() }
