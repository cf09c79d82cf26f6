package vm

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// The Vagrantfile and the QEMU lab must provision with one script, so that they cannot drift:
// the file the Vagrantfile's PROVISION names, vm.sh's PROVISION and the Go harness's
// Lab.Provision are the same file, and the Vagrantfile's provisioner runs PROVISION with the
// roles the script takes.
func TestVagrantAndQEMULabShareTheProvisioningScript(t *testing.T) {
	l, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(l.Script)
	vagrantDir := filepath.Join(dir, "..", "..", "vagrant")
	vf := read(t, filepath.Join(vagrantDir, "Vagrantfile"))

	m := regexp.MustCompile(`(?m)^PROVISION = "([^"]+)"$`).FindStringSubmatch(vf)
	if m == nil {
		t.Fatal(`Vagrantfile: no line PROVISION = "path"`)
	}
	fromVagrant := filepath.Join(vagrantDir, m[1])
	if !regexp.MustCompile(`provision "shell", path: PROVISION, args: \[i == 1 \? "init" : "join", SHARE\]`).MatchString(vf) {
		t.Error(`Vagrantfile: the shell provisioner does not run PROVISION with init (first machine) / join and SHARE`)
	}

	sh := read(t, l.Script)
	m = regexp.MustCompile(`(?m)^PROVISION=\$VM_DIR/(\S+)$`).FindStringSubmatch(sh)
	if m == nil {
		t.Fatal("vm.sh: no line PROVISION=$VM_DIR/FILE")
	}
	fromVMSh := filepath.Join(dir, m[1])
	if !regexp.MustCompile(`cp -f "\$PROVISION" "\$SHARE/provision.sh"`).MatchString(sh) {
		t.Error("vm.sh: does not copy $PROVISION into the share it runs provision.sh from")
	}

	same := func(a, b string) bool {
		fa, err1 := os.Stat(a)
		fb, err2 := os.Stat(b)
		return err1 == nil && err2 == nil && os.SameFile(fa, fb)
	}
	if !same(fromVagrant, fromVMSh) || !same(fromVMSh, l.Provision) {
		t.Errorf("provisioning scripts differ: Vagrantfile %s, vm.sh %s, Go harness %s", fromVagrant, fromVMSh, l.Provision)
	}
}

// `vagrant validate` checks the Vagrantfile where Vagrant is installed (CI installs Debian's
// vagrant package when it can); it needs no box and no provider.
func TestVagrantfileValidates(t *testing.T) {
	if _, err := exec.LookPath("vagrant"); err != nil {
		t.Skip("vagrant is not installed")
	}
	dir := filepath.Join(filepath.Dir(mustScript(t)), "..", "..", "vagrant")
	cmd := exec.Command("vagrant", "validate", "--ignore-provider")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "VAGRANT_HOME="+t.TempDir(), "VAGRANT_CHECKPOINT_DISABLE=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("vagrant validate: %v\n%s", err, out)
	}
}

func mustScript(t *testing.T) string {
	t.Helper()
	l, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return l.Script
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
