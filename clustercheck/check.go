// Package clustercheck is `knode check`: an active end-to-end check of a
// running cluster through its apiserver, the from-scratch guide's "validate
// the cluster" step. In a namespace of its own it starts an echo pod on
// every Ready node, then one-shot client pods that reach a pod on another
// node, the echo Service by its cluster IP and by its DNS name; each check is
// reported with its time, and the namespace is deleted at the end whatever
// happened.
package clustercheck

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"knode.dev/knode/internal/poll"
	"knode.dev/knode/kubeapi"
	"knode.dev/knode/manifests"
)

// Options configure a check.
type Options struct {
	API *kubeapi.Client
	// Image runs the pods (the payload's CoreDNS image, present on every
	// node); BinDir is where every node keeps the staged binaries.
	Image, BinDir string
	// Domain is the cluster's DNS domain.
	Domain string
	// Timeout bounds the pods' start and the clients' answers (default 3m).
	Timeout time.Duration
	// Poll is how often pods are looked at (default 250 ms).
	Poll time.Duration
}

// Result is one check.
type Result struct {
	Name    string  `json:"name"`
	OK      bool    `json:"ok"`
	Seconds float64 `json:"seconds"`
	Detail  string  `json:"detail,omitempty"`
}

// Run runs every check and cleans up; err is set only when the checks could
// not run at all (no apiserver, no Ready node). A failed check is a Result.
func Run(ctx context.Context, o Options) (results []Result, err error) {
	if o.Timeout == 0 {
		o.Timeout = 3 * time.Minute
	}
	if o.Poll == 0 {
		o.Poll = 250 * time.Millisecond
	}
	r := &run{o: o, api: o.API}
	nodes, notReady, err := r.readyNodes(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range notReady {
		r.add(Result{Name: "node " + n + " Ready", Detail: "not Ready: no pod started there"})
	}
	if len(nodes) == 0 {
		return r.results, errors.New("no Ready node to check")
	}
	if err := r.createNamespace(ctx); err != nil {
		return r.results, err
	}
	r.checks(ctx, nodes)
	r.cleanup(ctx)
	return r.results, nil
}

type run struct {
	o       Options
	api     *kubeapi.Client
	ns      string
	results []Result
}

func (r *run) add(res Result) { r.results = append(r.results, res) }

func (r *run) readyNodes(ctx context.Context) (ready, notReady []string, err error) {
	var list kubeapi.List[kubeapi.Node]
	code, err := r.api.Get(ctx, "/api/v1/nodes", &list)
	if err != nil {
		return nil, nil, fmt.Errorf("list nodes: %w", err)
	}
	if code != http.StatusOK {
		return nil, nil, fmt.Errorf("list nodes: HTTP %d", code)
	}
	for _, n := range list.Items {
		if ok, _ := n.Ready(); ok {
			ready = append(ready, n.Metadata.Name)
		} else {
			notReady = append(notReady, n.Metadata.Name)
		}
	}
	slices.Sort(ready)
	slices.Sort(notReady)
	return ready, notReady, nil
}

// create posts a rendered object; 201 (or 200) is success.
func (r *run) create(ctx context.Context, path string, doc []byte, out any) error {
	code, err := r.api.Do(ctx, http.MethodPost, path, "application/json", json.RawMessage(doc), out)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if code/100 != 2 {
		return fmt.Errorf("create %s: HTTP %d", path, code)
	}
	return nil
}

func (r *run) createNamespace(ctx context.Context) error {
	start := time.Now()
	suffix := make([]byte, 3)
	rand.Read(suffix)
	r.ns = "knode-check-" + hex.EncodeToString(suffix)
	if err := r.create(ctx, "/api/v1/namespaces", manifests.CheckNamespace(r.ns), nil); err != nil {
		return err
	}
	// Pods need the namespace's default service account, which the
	// controller-manager creates.
	err := r.until(ctx, func() (bool, string) {
		code, err := r.api.Get(ctx, "/api/v1/namespaces/"+r.ns+"/serviceaccounts/default", nil)
		return err == nil && code == http.StatusOK, fmt.Sprintf("service account default: HTTP %d %v", code, err)
	})
	r.add(result("namespace "+r.ns+" ready", start, err))
	return err
}

// checks starts the echo pods and the Service, then the clients.
func (r *run) checks(ctx context.Context, nodes []string) {
	pods := "/api/v1/namespaces/" + r.ns + "/pods"
	var svc kubeapi.Service
	if err := r.create(ctx, "/api/v1/namespaces/"+r.ns+"/services", manifests.CheckService(r.ns, "echo"), &svc); err != nil {
		r.add(Result{Name: "echo Service", Detail: err.Error()})
		return
	}
	start := time.Now()
	echo := map[string]string{} // node -> pod name
	for i, n := range nodes {
		name := fmt.Sprintf("echo-%d", i)
		p := r.pod(name, n, "")
		if err := r.create(ctx, pods, manifests.CheckEchoPod(p), nil); err != nil {
			r.add(Result{Name: "echo pod on " + n, Detail: err.Error()})
			continue
		}
		echo[n] = name
	}
	ips := r.waitEcho(ctx, nodes, echo, start)

	// Clients: each node reaches the echo pod of the next (a ring, so every
	// node is a source and a destination), then the Service by IP and by name.
	type client struct{ name, check, node, target string }
	var clients []client
	for i, n := range nodes {
		peer := nodes[(i+1)%len(nodes)]
		if ips[n] == "" || ips[peer] == "" {
			continue
		}
		what := fmt.Sprintf("pod to pod: %s -> %s", n, peer)
		if peer == n {
			what = "pod to pod on " + n + " (one node)"
		}
		clients = append(clients, client{fmt.Sprintf("p2p-%d", i), what, n, fmt.Sprintf("http://%s:%d", ips[peer], manifests.CheckPort)})
	}
	if len(ips) > 0 {
		clients = append(clients,
			client{"service", "Service echo by cluster IP " + svc.Spec.ClusterIP, nodes[0], fmt.Sprintf("http://%s:%d", svc.Spec.ClusterIP, manifests.CheckPort)},
			client{"dns", "Service echo by DNS name (cluster DNS)", nodes[len(nodes)-1], fmt.Sprintf("http://echo.%s.svc.%s:%d", r.ns, r.o.Domain, manifests.CheckPort)})
	}
	started := map[string]time.Time{}
	names := map[string]string{}
	for _, c := range clients {
		p := r.pod(c.name, c.node, c.target)
		started[c.name], names[c.name] = time.Now(), c.check
		if err := r.create(ctx, pods, manifests.CheckClientPod(p), nil); err != nil {
			r.add(Result{Name: c.check, Detail: err.Error()})
			delete(started, c.name)
		}
	}
	r.waitClients(ctx, started, names)
}

func (r *run) pod(name, node, target string) manifests.CheckPod {
	return manifests.CheckPod{Namespace: r.ns, Name: name, Node: node, Image: r.o.Image, BinDir: r.o.BinDir, Target: target}
}

// listPods lists the check's pods by name.
func (r *run) listPods(ctx context.Context) (map[string]kubeapi.Pod, error) {
	var list kubeapi.List[kubeapi.Pod]
	code, err := r.api.Get(ctx, "/api/v1/namespaces/"+r.ns+"/pods", &list)
	if err != nil || code != http.StatusOK {
		return nil, fmt.Errorf("list pods: HTTP %d %v", code, err)
	}
	out := map[string]kubeapi.Pod{}
	for _, p := range list.Items {
		out[p.Metadata.Name] = p
	}
	return out, nil
}

// waitEcho waits for every echo pod to be Ready and returns their IPs by node.
func (r *run) waitEcho(ctx context.Context, nodes []string, echo map[string]string, start time.Time) map[string]string {
	ips := map[string]string{}
	last := map[string]string{}
	r.until(ctx, func() (bool, string) {
		pods, err := r.listPods(ctx)
		if err != nil {
			return false, err.Error()
		}
		for n, name := range echo {
			p, ok := pods[name]
			if _, done := ips[n]; done || !ok {
				continue
			}
			if p.Ready() && p.Status.PodIP != "" {
				ips[n] = p.Status.PodIP
				r.add(Result{Name: "pod on " + n + " running", OK: true, Seconds: since(start), Detail: p.Status.PodIP})
				continue
			}
			last[n] = podState(p)
		}
		return len(ips) == len(echo), ""
	})
	for _, n := range nodes {
		if _, ok := ips[n]; !ok && echo[n] != "" {
			r.add(Result{Name: "pod on " + n + " running", Seconds: since(start), Detail: "not ready: " + last[n]})
		}
	}
	return ips
}

// waitClients waits for every client pod to end; exit code 0 passes.
func (r *run) waitClients(ctx context.Context, started map[string]time.Time, names map[string]string) {
	done := map[string]bool{}
	last := map[string]string{}
	r.until(ctx, func() (bool, string) {
		pods, err := r.listPods(ctx)
		if err != nil {
			return false, err.Error()
		}
		for name, at := range started {
			p, ok := pods[name]
			if done[name] || !ok {
				continue
			}
			for _, cs := range p.Status.ContainerStatuses {
				if t := cs.State.Terminated; t != nil {
					done[name] = true
					res := Result{Name: names[name], OK: t.ExitCode == 0, Seconds: since(at)}
					if !res.OK {
						res.Detail = fmt.Sprintf("exit %d: %s", t.ExitCode, lastLine(t.Message))
					}
					r.add(res)
				}
			}
			last[name] = podState(p)
		}
		return len(done) == len(started), ""
	})
	for name, at := range started {
		if !done[name] {
			r.add(Result{Name: names[name], Seconds: since(at), Detail: "no answer: " + last[name]})
		}
	}
}

// cleanup deletes the namespace and waits until it is gone.
func (r *run) cleanup(ctx context.Context) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	path := "/api/v1/namespaces/" + r.ns
	code, err := r.api.Do(ctx, http.MethodDelete, path, "", nil, nil)
	if err == nil && code/100 != 2 && code != http.StatusNotFound {
		err = fmt.Errorf("delete namespace %s: HTTP %d", r.ns, code)
	}
	if err == nil {
		err = r.untilFor(ctx, 2*time.Minute, func() (bool, string) {
			code, err := r.api.Get(ctx, path, nil)
			return err == nil && code == http.StatusNotFound, fmt.Sprintf("namespace %s: HTTP %d %v", r.ns, code, err)
		})
	}
	r.add(result("cleanup: namespace "+r.ns+" deleted", start, err))
}

func (r *run) until(ctx context.Context, ok func() (bool, string)) error {
	return r.untilFor(ctx, r.o.Timeout, ok)
}

// untilFor polls ok until it holds or timeout passes.
func (r *run) untilFor(ctx context.Context, timeout time.Duration, ok func() (bool, string)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	if poll.Until(ctx, r.o.Poll, func() (bool, error) {
		done, seen := ok()
		if seen != "" {
			last = seen
		}
		return done, nil
	}) != nil {
		return fmt.Errorf("not within %s (last: %s)", timeout, last)
	}
	return nil
}

// podState says why a pod is not where it should be yet.
func podState(p kubeapi.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			return strings.TrimSpace(w.Reason + " " + lastLine(w.Message))
		}
	}
	if p.Spec.NodeName == "" {
		return "not scheduled"
	}
	return "phase " + p.Status.Phase
}

func result(name string, start time.Time, err error) Result {
	res := Result{Name: name, OK: err == nil, Seconds: since(start)}
	if err != nil {
		res.Detail = err.Error()
	}
	return res
}

func since(t time.Time) float64 { return float64(time.Since(t).Milliseconds()) / 1000 }

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	l := strings.TrimSpace(lines[len(lines)-1])
	if len(l) > 200 {
		l = l[:200]
	}
	return l
}
