package hostprep_test

import (
	"context"
	"strings"
	"testing"

	"knode.dev/knode/hostprep"
)

// TestExistingRuntime: a host that already runs its own containerd (unit in
// /lib/systemd, a config, images in /var/lib/containerd). Preflight refuses
// it, naming the service and the flag; allowed to go on, knode backs up the
// config it overwrites; reset puts the config back, leaves the other
// containerd's state, and enables and starts the host's containerd again.
func TestExistingRuntime(t *testing.T) {
	f := newNetFake()
	const hostConfig = "# the host's own containerd configuration\nversion = 2\n"
	const meta = hostprep.ContainerdRoot + "/io.containerd.metadata.v1.bolt/meta.db"
	// 0600: a containerd config may hold registry credentials; reset keeps its mode.
	f.Files.WriteFile(hostprep.ContainerdConfPath, []byte(hostConfig), 0o600)
	f.Files.WriteFile(meta, []byte("images of the host"), 0o600)
	f.Files.WriteFile("/lib/systemd/system/containerd.service", []byte("[Service]\nExecStart=/usr/bin/containerd\n"), 0o644)
	ctx := context.Background()
	f.Systemd.Enable(ctx, "containerd.service")
	f.Systemd.Restart(ctx, "containerd.service")
	before, beforeFiles := f.String(), f.Files.String()

	s, _ := fullSpec(t, hostprep.Routed)
	_, err := (&hostprep.Runner{}).Apply(ctx, s, f.Host())
	for _, want := range []string{"[existing-runtime] containerd.service is running and is not knode's", "--ignore-preflight-errors=existing-runtime"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
	if f.String() != before {
		t.Fatal("a refused run changed the host")
	}

	if _, err := (&hostprep.Runner{IgnorePreflightErrors: []string{"existing-runtime"}}).Apply(ctx, s, f.Host()); err != nil {
		t.Fatal(err)
	}
	if b, _ := f.Files.ReadFile(hostprep.ContainerdConfPath); string(b) == hostConfig {
		t.Fatal("knode did not write its containerd configuration")
	}
	// knode's own units now run: a later run passes preflight without the flag.
	if _, err := (&hostprep.Runner{}).Apply(ctx, s, f.Host()); err != nil {
		t.Fatalf("second run: %v", err)
	}

	if _, err := hostprep.Reset(ctx, f.Host(), hostprep.ResetOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := f.Files.ReadFile(hostprep.ContainerdConfPath); string(b) != hostConfig {
		t.Errorf("config after reset:\n%s\nwant the host's:\n%s", b, hostConfig)
	}
	if b, err := f.Files.ReadFile(meta); err != nil || string(b) != "images of the host" {
		t.Errorf("the host's containerd state after reset: %q %v", b, err)
	}
	if !strings.Contains(f.Systemd.String(), "containerd.service active enabled=true") {
		t.Errorf("the host's containerd is not back:\n%s", f.Systemd.String())
	}
	if got := f.Files.String(); got != beforeFiles {
		t.Errorf("files and modes after reset:\n%s\nbefore:\n%s", got, beforeFiles)
	}
	if got, want := unloaded(f.String()), unloaded(before); got != want {
		t.Errorf("after reset:\n%s\nbefore:\n%s", got, want)
	}
}

// TestExistingRuntimeBySocket: a runtime that no systemd unit runs (started
// by hand or by another supervisor) is seen by its socket answering; once
// knode's own containerd runs, its socket is knode's.
func TestExistingRuntimeBySocket(t *testing.T) {
	ctx := context.Background()
	s, _ := fullSpec(t, hostprep.Routed)
	for _, c := range []struct{ socket, unit string }{
		{hostprep.ContainerdSocket, "containerd.service"},
		{"/run/docker.sock", "docker.service"},
	} {
		f := newNetFake()
		f.Probe.Listening = map[string]bool{c.socket: true}
		before := f.String()
		_, err := (&hostprep.Runner{}).Apply(ctx, s, f.Host())
		want := "[existing-runtime] a container runtime answers on " + c.socket + ", and not as " + c.unit
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--ignore-preflight-errors=existing-runtime") {
			t.Errorf("%s: err = %v, want %q and the flag", c.socket, err, want)
		}
		if f.String() != before {
			t.Errorf("%s: a refused run changed the host", c.socket)
		}
	}

	f := newNetFake()
	if _, err := (&hostprep.Runner{}).Apply(ctx, s, f.Host()); err != nil {
		t.Fatal(err)
	}
	f.Probe.Listening = map[string]bool{hostprep.ContainerdSocket: true}
	if _, err := (&hostprep.Runner{}).Apply(ctx, s, f.Host()); err != nil {
		t.Errorf("knode's own containerd refused as another installation's: %v", err)
	}
}

// TestResetRemovesLegacyCNIConfig: knode's CNI configuration from before it
// had its own directory is removed by reset; another installation's beside
// it stays.
func TestResetRemovesLegacyCNIConfig(t *testing.T) {
	f := newNetFake()
	f.Files.WriteFile("/etc/cni/net.d/10-knode.conflist", []byte("{}\n"), 0o644)
	f.Files.WriteFile("/etc/cni/net.d/10-flannel.conflist", []byte("{}\n"), 0o644)
	if _, err := hostprep.Reset(context.Background(), f.Host(), hostprep.ResetOptions{}); err != nil {
		t.Fatal(err)
	}
	if f.Files.Exists("/etc/cni/net.d/10-knode.conflist") || !f.Files.Exists("/etc/cni/net.d/10-flannel.conflist") {
		t.Errorf("after reset:\n%s", f.Files.String())
	}
}
