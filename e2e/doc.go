// Package e2e holds knode's end-to-end tests (tier 3): the real binary with its payload in
// node containers run by the lab (package knode.dev/knode/e2e/lab), formed into clusters with
// `knode init` and `knode join` exactly as a user would, checked with kubectl, and faulted.
//
// The tests carry the build tag e2e, so `go test ./...` never runs them. Run them as root:
//
//	make e2e                        # builds bin/knode with the payload, runs every scenario
//	make e2e E2E_RUN=TestScenario1  # one scenario
//	make e2e-smoke                  # the lab alone, no knode needed
//	KNODE_BIN=$PWD/bin/knode go test -tags e2e -v -count=1 -timeout 120m ./e2e/
//
// KNODE_BIN names the knode binary copied into every node; KNODE_E2E_KEEP=1 leaves the nodes
// of a failed test running for inspection (then `make lab-down`).
package e2e
