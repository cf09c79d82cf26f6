package hostprep

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"knode.dev/knode/manifests"
	"knode.dev/knode/pki"
)

// Renewal: the agent asks CertSchedule when this node's leaf certificates are
// due (a third of their lifetime left, pki.RenewAt) and, once one is, calls
// Renew, which re-runs the PKI phase (it replaces exactly the due leaves) and
// restarts only what reads a rewritten file.

// renewUsers maps each file a renewal rewrites to what must restart to use
// it: a systemd unit, or a static pod (its manifest's name). Files nobody
// needs to restart for are absent. Why each entry is as it is:
//   - kubelet.conf and kube-proxy.conf embed their client certificates; the
//     kubelet and kube-proxy read them once, at start.
//   - kubelet-serving.crt is the kubelet's tlsCertFile, which it reloads from
//     disk by itself (feature gate ReloadKubeletServerCertificateFile, on by
//     default since 1.31): no restart.
//   - control-plane components do not all reload every file (kubeadm's
//     renewal docs say to restart them), so each static pod reading a
//     renewed file has its containers restarted (restartUser).
//   - admin.conf and super-admin.conf are read by each kubectl call.
func renewUsers() map[string][]string {
	p := func(n string) string { return path.Join(PKIDir, n+".crt") }
	return map[string][]string{
		KubeletKubeconfig:             {"kubelet.service"},
		KubeProxyKubeconfig:           {"kube-proxy.service"},
		p("apiserver"):                {"kube-apiserver.yaml"},
		p("apiserver-kubelet-client"): {"kube-apiserver.yaml"},
		p("apiserver-etcd-client"):    {"kube-apiserver.yaml"},
		p("front-proxy-client"):       {"kube-apiserver.yaml"},
		p("etcd/server"):              {"etcd.yaml"},
		p("etcd/peer"):                {"etcd.yaml"},
		path.Join(KubernetesDir, manifests.ControllerManagerConf): {"kube-controller-manager.yaml"},
		path.Join(KubernetesDir, manifests.SchedulerConf):         {"kube-scheduler.yaml"},
	}
}

// CertDue is one leaf certificate's renewal time.
type CertDue struct {
	// Path of the certificate under PKIDir.
	Path    string
	RenewAt time.Time
	// Lifetime is the certificate's (0 when unreadable): masters take turns
	// in windows derived from it (pki.RenewWindow).
	Lifetime time.Duration
}

// CertSchedule lists the leaf certificates this node keeps (the PKI phase's
// leaves) with their renewal times, soonest first. A missing or unreadable
// certificate is due at once (the zero time).
func CertSchedule(s *Spec, f Files) []CertDue {
	var out []CertDue
	for _, l := range leaves(s) {
		p := path.Join(PKIDir, l.name+".crt")
		d := CertDue{Path: p}
		if data, err := f.ReadFile(p); err == nil {
			if cert, err := pki.ParseCert(data); err == nil {
				d.RenewAt, d.Lifetime = pki.RenewAt(cert), cert.NotAfter.Sub(cert.NotBefore)
			}
		}
		out = append(out, d)
	}
	slices.SortStableFunc(out, func(a, b CertDue) int { return a.RenewAt.Compare(b.RenewAt) })
	return out
}

// Renewal is what one Renew changed.
type Renewal struct {
	// Renewed lists the rewritten files that something reads at start.
	Renewed []string
	// Restarted lists the units and the static pods (manifest names) restarted.
	Restarted []string
}

// Renew re-runs the PKI phase, which replaces every leaf certificate that is
// due or no longer matches the spec (and the kubeconfigs embedding them),
// then restarts the active units and the static pods that read a rewritten
// file, and nothing else.
func Renew(ctx context.Context, s *Spec, h *Host, out io.Writer, log *slog.Logger) (Renewal, error) {
	users := renewUsers()
	files := slices.Sorted(maps.Keys(users))
	before := readFiles(h.Files, files)
	r := &Runner{Only: []string{PhasePKI}, NoRollback: true, Out: out, Log: log}
	if _, err := r.Apply(ctx, s, h); err != nil {
		return Renewal{}, fmt.Errorf("renew the certificates of %s: %w", s.Self.Name, err)
	}
	after := readFiles(h.Files, files)
	var rn Renewal
	restart := map[string]bool{}
	for _, f := range files {
		if bytes.Equal(before[f], after[f]) {
			continue
		}
		rn.Renewed = append(rn.Renewed, f)
		for _, u := range users[f] {
			restart[u] = true
		}
	}
	for _, u := range slices.Sorted(maps.Keys(restart)) {
		done, err := restartUser(ctx, s, h, u)
		if err != nil {
			return rn, err
		}
		if done {
			rn.Restarted = append(rn.Restarted, u)
		}
	}
	return rn, nil
}

// restartUser restarts a unit that is active, or the containers of a
// static pod (user is its manifest's name) whose manifest exists. A static
// pod's containers are stopped through the CRI and the kubelet starts them
// again in the same pod: its identity, a hash of the manifest, is unchanged,
// so nothing waits for an old pod of the same name to terminate.
func restartUser(ctx context.Context, s *Spec, h *Host, user string) (bool, error) {
	if strings.HasSuffix(user, ".service") {
		active, _, err := h.Systemd.State(ctx, user)
		if err != nil {
			return false, fmt.Errorf("state of %s: %w", user, err)
		}
		if active != "active" {
			return false, nil
		}
		if err := h.Systemd.Restart(ctx, user); err != nil {
			return false, fmt.Errorf("restart %s for its renewed certificate: %w", user, err)
		}
		return true, nil
	}
	if !h.Files.Exists(path.Join(ManifestsDir, user)) {
		return false, nil
	}
	pod := strings.TrimSuffix(user, ".yaml") + "-" + s.Self.Name // the kubelet names static pods so
	n, err := h.Pods.RestartContainers(ctx, "kube-system", pod)
	if err != nil {
		return false, fmt.Errorf("restart pod %s for its renewed certificates: %w", pod, err)
	}
	return n > 0, nil
}

func readFiles(f Files, names []string) map[string][]byte {
	out := map[string][]byte{}
	for _, n := range names {
		if data, err := f.ReadFile(n); err == nil {
			out[n] = data
		}
	}
	return out
}
