//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"knode.dev/knode/e2e/lab"
)

// theLab is the lab every test of this package uses; TestMain prepares it (dockerd, node
// image) once and tears it down at the end. Tests run one after another: they share the
// node names and the network.
var theLab *lab.Lab

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e: the lab needs root (dockerd, iptables, debootstrap)")
		return 1
	}
	l, err := lab.New(os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	theLab = l
	ctx := context.Background()

	// t.Cleanup does not run when the process is interrupted: remove the lab here.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "\ne2e: %v: removing the lab\n", s)
		_ = l.Teardown(context.Background())
		os.Exit(130)
	}()

	t0 := time.Now()
	if err := l.Prepare(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: prepare the lab:", err)
		_ = l.Teardown(ctx)
		return 1
	}
	fmt.Printf("e2e timing: lab prepared (deps, dockerd, node image) in %.1fs\n", time.Since(t0).Seconds())

	code := m.Run()

	if keep() && code != 0 {
		fmt.Fprintln(os.Stderr, "e2e: KNODE_E2E_KEEP=1 and a test failed: lab left running; `make lab-down` removes it")
		return code
	}
	t1 := time.Now()
	if err := l.Teardown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: teardown:", err)
		if code == 0 {
			code = 1
		}
	}
	fmt.Printf("e2e timing: lab torn down (nodes, network, dockerd, host firewall) in %.1fs\n", time.Since(t1).Seconds())
	return code
}

func keep() bool { return os.Getenv("KNODE_E2E_KEEP") == "1" }
