package hostprep

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
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
//     renewed file is replaced.
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
				d.RenewAt = pki.RenewAt(cert)
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
	// Restarted lists the units restarted and the static pods replaced.
	Restarted []string
}

// Renew re-runs the PKI phase, which replaces every leaf certificate that is
// due or no longer matches the spec (and the kubeconfigs embedding them),
// then restarts the active units and replaces the static pods that read a
// rewritten file, and nothing else.
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
	stamp := map[string][]byte{} // user -> what its new files hash to
	for _, f := range files {
		if bytes.Equal(before[f], after[f]) {
			continue
		}
		rn.Renewed = append(rn.Renewed, f)
		for _, u := range users[f] {
			stamp[u] = append(stamp[u], after[f]...)
		}
	}
	for _, u := range slices.Sorted(maps.Keys(stamp)) {
		done, err := restartUser(ctx, h, u, stamp[u])
		if err != nil {
			return rn, err
		}
		if done {
			rn.Restarted = append(rn.Restarted, u)
		}
	}
	return rn, nil
}

// restartUser restarts a unit that is active, or replaces a static pod whose
// manifest exists, by stamping the hash of its new files into the manifest.
func restartUser(ctx context.Context, h *Host, user string, files []byte) (bool, error) {
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
	name := path.Join(ManifestsDir, user)
	old, err := h.Files.ReadFile(name)
	if notExist(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", name, err)
	}
	sum := sha256.Sum256(files)
	data, err := manifests.Restamp(old, hex.EncodeToString(sum[:8]))
	if err != nil {
		return false, fmt.Errorf("%s: %w", name, err)
	}
	if err := h.Files.WriteFile(name, data, 0o600); err != nil {
		return false, fmt.Errorf("write %s: %w", name, err)
	}
	return true, nil
}

// keepStamp carries a renewal's stamp from the manifest at name over to its
// new rendering, so that re-applying the phases replaces no pod again.
func keepStamp(e *Env, name string, rendered []byte) []byte {
	old, err := e.Host.Files.ReadFile(name)
	if err != nil {
		return rendered
	}
	stamp := manifests.StampOf(old)
	if stamp == "" {
		return rendered
	}
	if data, err := manifests.Restamp(rendered, stamp); err == nil {
		return data
	}
	return rendered
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
