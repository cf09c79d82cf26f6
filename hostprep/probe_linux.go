//go:build linux

package hostprep

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// linuxProbe implements Probe by looking at /proc and /sys. Unix sockets
// are looked for under root, as RootFiles places files.
type linuxProbe struct{ root string }

// Serving implements Probe.
func (linuxProbe) Serving(ctx context.Context, url string, caPEM []byte) bool {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return false
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (linuxProbe) Facts(ctx context.Context) (Facts, error) {
	f := Facts{EUID: os.Geteuid(), OS: runtime.GOOS, Arch: runtime.GOARCH, Now: time.Now(), CgroupVersion: 1}
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		f.CgroupVersion = 2
	}
	if b, err := os.ReadFile("/proc/swaps"); err == nil {
		f.SwapOn = len(bytes.Split(bytes.TrimSpace(b), []byte("\n"))) > 1
	}
	f.InContainer = inContainer()
	if b, err := os.ReadFile("/proc/1/comm"); err == nil {
		f.Systemd = strings.TrimSpace(string(b)) == "systemd"
	}
	return f, nil
}

// inContainer detects a container the way systemd-detect-virt does: the
// environment of PID 1, or the marker files of docker and podman.
func inContainer() bool {
	for _, f := range []string{"/.dockerenv", "/run/.containerenv"} {
		if _, err := os.Stat(f); err == nil {
			return true
		}
	}
	if b, err := os.ReadFile("/run/systemd/container"); err == nil && len(bytes.TrimSpace(b)) > 0 {
		return true
	}
	b, _ := os.ReadFile("/proc/1/environ")
	return bytes.Contains(b, []byte("container="))
}

// Answers implements Probe: a connection is accepted within a second.
func (p linuxProbe) Answers(socket string) bool {
	c, err := net.DialTimeout("unix", filepath.Join(p.root, socket), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func (linuxProbe) PortInUse(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		return true
	}
	l.Close()
	return false
}

// osCommander implements Commander with os/exec.
type osCommander struct{}

// Run returns the command's standard output only: warnings on standard
// error (ctr's cgroup v1 deprecation notice) must not be read as results;
// they appear in the error when the command fails.
func (osCommander) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(append(out, stderr.Bytes()...)))
	}
	return out, nil
}
