package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"knode.dev/knode/internal/poll"
	"knode.dev/knode/kubeapi"
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
			last := "nothing yet"
			err := poll.Until(ctx, pollEvery, func() (bool, error) {
				ok, seen := w.check(ctx)
				if seen != "" {
					last = seen
				}
				return ok, nil
			})
			if err != nil {
				results <- result{name: w.name, err: fmt.Errorf("%s: not within the wait (last seen: %s)", w.name, last)}
				return
			}
			results <- result{name: w.name, at: time.Now()}
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
func apiServing(api *kubeapi.Client) wait {
	return wait{name: "apiserver serving", check: func(ctx context.Context) (bool, string) {
		code, err := api.Get(ctx, "/readyz", nil)
		if err != nil {
			return false, err.Error()
		}
		return code == http.StatusOK, fmt.Sprintf("/readyz: HTTP %d", code)
	}}
}

// nodeWaits are the waits on this node's Node object, read with the kubelet's
// own credential: registered, Ready, and carrying the agreed pod CIDR.
func nodeWaits(api *kubeapi.Client, node, podCIDR string) []wait {
	get := func(ctx context.Context) (kubeapi.Node, bool, string) {
		var n kubeapi.Node
		code, err := api.Get(ctx, "/api/v1/nodes/"+node, &n)
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
			ready, _ := n.Ready()
			return ok && ready, last
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
func coreDNSReady(api *kubeapi.Client) wait {
	return wait{name: "CoreDNS ready", check: func(ctx context.Context) (bool, string) {
		var d struct {
			Status struct {
				ReadyReplicas int `json:"readyReplicas"`
			} `json:"status"`
		}
		code, err := api.Get(ctx, "/apis/apps/v1/namespaces/kube-system/deployments/coredns", &d)
		if err != nil {
			return false, err.Error()
		}
		if code != http.StatusOK {
			return false, fmt.Sprintf("deployment coredns: HTTP %d", code)
		}
		return d.Status.ReadyReplicas > 0, "deployment coredns: no ready replica"
	}}
}
