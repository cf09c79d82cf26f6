package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/hostprep"
	"knode.dev/knode/manifests"
	"knode.dev/knode/pki"
)

func TestListCerts(t *testing.T) {
	root := t.TempDir()
	now := time.Now()
	ca, err := pki.NewCA("demo", now)
	if err != nil {
		t.Fatal(err)
	}
	short, err := pki.Issue(ca, pki.CertSpec{CommonName: "etcd-peer", Server: true, Validity: 48 * time.Hour}, now)
	if err != nil {
		t.Fatal(err)
	}
	kubelet, err := pki.Issue(ca, pki.KubeletClient("n1"), now)
	if err != nil {
		t.Fatal(err)
	}
	write := func(p string, data []byte) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(hostprep.PKIDir+"/ca.crt", ca.CertPEM)
	write(hostprep.PKIDir+"/etcd/peer.crt", short.CertPEM)
	write(hostprep.PKIDir+"/etcd/peer.key", short.KeyPEM)
	write(hostprep.KubeletKubeconfig, manifests.KubeconfigFile(manifests.Kubeconfig{Cluster: "demo", Server: "https://127.0.0.1:6444",
		CAPEM: ca.CertPEM, User: "system:node:n1", CertPEM: kubelet.CertPEM, KeyPEM: kubelet.KeyPEM}))
	certs, err := listCerts(root, now, renewTurns{Seat: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 3 {
		t.Fatalf("%d certificates, want 3: %+v", len(certs), certs)
	}
	if first := certs[0]; first.Path != hostprep.PKIDir+"/etcd/peer.crt" || first.DaysLeft != 1 {
		t.Errorf("soonest first: %+v", first)
	}
	if certs[1].Path != hostprep.KubeletKubeconfig || certs[2].Path != hostprep.PKIDir+"/ca.crt" {
		t.Errorf("order: %s, %s", certs[1].Path, certs[2].Path)
	}
	// Leaves renew with a third of their life left; the CA is not renewed.
	if r := certs[0].RenewsAt; r == nil || !r.Equal(certs[0].NotAfter.Add(-(48*time.Hour+5*time.Minute)/3)) {
		t.Errorf("a two-day certificate renews at %v, want a third of 48 h 5 min (5 min back-dated) before %s", r, certs[0].NotAfter)
	}
	if certs[1].RenewsAt == nil || certs[2].RenewsAt != nil {
		t.Errorf("renews at: kubelet %v, CA %v", certs[1].RenewsAt, certs[2].RenewsAt)
	}
	var out strings.Builder
	printCerts(&out, certs)
	if !strings.Contains(out.String(), "RENEWS AT") || !strings.Contains(out.String(), certs[1].RenewsAt.Format(time.RFC3339)) {
		t.Errorf("table:\n%s", out.String())
	}
	write(hostprep.AdminKubeconfig, []byte("not: [a kubeconfig"))
	if _, err := listCerts(root, now, renewTurns{Seat: -1}); err == nil {
		t.Error("an unreadable kubeconfig was skipped silently")
	}
	if certs, err := listCerts(t.TempDir(), now, renewTurns{Seat: -1}); err != nil || len(certs) != 0 {
		t.Errorf("an empty host: %v %v", certs, err)
	}
}

// On a master, each leaf's TURN is its seat's next window from the due time
// (the agent's renewStart): seat 1 of 3 with a 40-minute certificate (one
// minute windows) starts in a window i with i mod 3 = 1, in its first half,
// never before the due time; a worker's TURN is the due time.
func TestCertTurns(t *testing.T) {
	root := t.TempDir()
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	ca, err := pki.NewCA("demo", now)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := pki.Issue(ca, pki.CertSpec{CommonName: "kube-apiserver", Server: true, Validity: 40 * time.Minute}, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, hostprep.PKIDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, hostprep.PKIDir, "apiserver.crt"), leaf.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		turns renewTurns
		seat  int64
	}{{renewTurns{Seat: 1, Masters: 3}, 1}, {renewTurns{Seat: 2, Masters: 3}, 2}, {renewTurns{Seat: -1}, -1}} {
		certs, err := listCerts(root, now, tt.turns)
		if err != nil || len(certs) != 1 {
			t.Fatalf("%v: %+v %v", tt.turns, certs, err)
		}
		due, turn := *certs[0].RenewsAt, *certs[0].RenewTurn
		parsed, err := pki.ParseCert(leaf.CertPEM)
		if err != nil {
			t.Fatal(err)
		}
		w := pki.RenewWindow(parsed.NotAfter.Sub(parsed.NotBefore))
		if tt.seat < 0 {
			if !turn.Equal(due) {
				t.Errorf("worker: turn %s, want the due time %s", turn, due)
			}
			continue
		}
		i := turn.UnixNano() / int64(w)
		if turn.Before(due) || i%3 != tt.seat || turn.UnixNano()-i*int64(w) >= int64(w/2) || turn.Sub(due) > 3*w {
			t.Errorf("seat %d: due %s, turn %s (window %d of %s)", tt.seat, due, turn, i, w)
		}
		var out strings.Builder
		fmt.Fprintln(&out, tt.turns)
		printCerts(&out, certs)
		if !strings.Contains(out.String(), "TURN") || !strings.Contains(out.String(), turn.Format(time.RFC3339)) || !strings.Contains(out.String(), fmt.Sprintf("seat %d of 3", tt.seat)) {
			t.Errorf("table:\n%s", out.String())
		}
	}
}
