package vm

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// Namespace is the lab's network namespace (vm.sh's NS): the VMs' bridge lives there and
// nothing of it reaches the host's own network.
const Namespace = "knode-vm"

// Get sends one HTTP GET to url from inside the lab's namespace (as a client outside the
// cluster would, on the VMs' network) and returns the status code and up to 4 KiB of the body.
// The connection is made on an OS thread moved into the namespace; that thread is not reused.
func (l *Lab) Get(ctx context.Context, url string, timeout time.Duration) (int, string, error) {
	return getIn(ctx, Namespace, url, timeout)
}

// getIn is Get from inside the named network namespace.
func getIn(ctx context.Context, ns, url string, timeout time.Duration) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", fmt.Errorf("GET %s: %w", url, err)
	}
	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// Never unlocked: the goroutine's thread ends with it, namespace and all.
		runtime.LockOSThread()
		conn, err := dialIn(ctx, ns, req.URL.Host, timeout)
		if err != nil {
			done <- result{err: fmt.Errorf("GET %s: %w", url, err)}
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(timeout))
		if err := req.Write(conn); err != nil {
			done <- result{err: fmt.Errorf("GET %s: %w", url, err)}
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), req)
		if err != nil {
			done <- result{err: fmt.Errorf("GET %s: %w", url, err)}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
		done <- result{resp.StatusCode, string(b), err}
	}()
	r := <-done
	return r.code, r.body, r.err
}

// dialIn moves the calling goroutine's (locked) thread into the named network namespace and
// dials addr over TCP from there: the socket belongs to that namespace for its whole life.
func dialIn(ctx context.Context, ns, addr string, timeout time.Duration) (net.Conn, error) {
	f, err := os.Open("/run/netns/" + ns)
	if err != nil {
		return nil, fmt.Errorf("network namespace %s: %w", ns, err)
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("enter network namespace %s: %w", ns, err)
	}
	d := net.Dialer{Timeout: timeout}
	return d.DialContext(ctx, "tcp", addr)
}

// Forward listens on a loopback port of the host and forwards each connection to addr inside
// the lab's namespace, until ctx ends; it returns the local address. The harness reads the
// apiserver through it from the host, rather than running kubectl in a VM whose one emulated
// CPU the control plane needs.
func (l *Lab) Forward(ctx context.Context, addr string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("forward to %s: %w", addr, err)
	}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go forwardIn(ctx, c, addr)
		}
	}()
	return ln.Addr().String(), nil
}

// forwardIn copies between c and a new connection to addr in the lab's namespace.
func forwardIn(ctx context.Context, c net.Conn, addr string) {
	defer c.Close()
	up := make(chan net.Conn, 1)
	go func() {
		// Never unlocked: the goroutine's thread ends with it, namespace and all.
		runtime.LockOSThread()
		conn, err := dialIn(ctx, Namespace, addr, 10*time.Second)
		if err != nil {
			conn = nil
		}
		up <- conn
	}()
	u := <-up
	if u == nil {
		return
	}
	defer u.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
	<-done
}
