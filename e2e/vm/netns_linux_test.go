package vm

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestGetInNamespace (root): Get's request goes out from inside the namespace it names: a
// server listening on 127.0.0.1 inside a fresh namespace answers it, while the same address
// and port from the test's own namespace does not.
func TestGetInNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a network namespace")
	}
	ns := fmt.Sprintf("knvm%d-get", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("ip netns unusable: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up in %s: %v: %s", ns, err, out)
	}
	// Listen from a thread moved into the namespace; serve from anywhere.
	lc := make(chan net.Listener, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			t.Error(err)
			lc <- nil
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			t.Error(err)
			lc <- nil
			return
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Error(err)
		}
		lc <- l
	}()
	l := <-lc
	if l == nil {
		t.FailNow()
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "echo-in-"+ns)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	url := "http://" + l.Addr().String() + "/hostname"
	code, body, err := getIn(t.Context(), ns, url, 5*time.Second)
	if err != nil || code != 200 || body != "echo-in-"+ns {
		t.Fatalf("GET %s in %s: %d %q %v; want 200 %q", url, ns, code, body, err, "echo-in-"+ns)
	}
	c := http.Client{Timeout: 2 * time.Second}
	if resp, err := c.Get(url); err == nil {
		resp.Body.Close()
		t.Fatalf("GET %s from the test's own namespace answered %s: the server is not in %s", url, resp.Status, ns)
	}
}
