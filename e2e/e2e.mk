# e2e/e2e.mk: the end-to-end lab (issue 4). Included by the top Makefile.
#
#   make lab [N=3]        knode (with payload) in N node containers: init on the first, join the rest
#   make lab-down         remove nodes, network, volumes, the lab's dockerd; restore the host firewall
#   make lab-nodes [N=3]  N bare node containers (systemd, no knode), e.g. for poking around
#   make lab-status       what of the lab exists
#   make e2e [E2E_RUN=]   the scenarios (go test -tags e2e ./e2e); always removes the lab afterwards
#   make e2e-smoke        the harness's own test: nodes up, systemd, ping, clean teardown
#   make bench-up [BENCH_RUNS=5] [N=4]  bring-up timings: knode's own tables over fresh labs
# Every knob of e2e/lab/lab.sh is an environment variable (KNODE_E2E_*; `e2e/lab/lab.sh help`).

LAB_SH     := e2e/lab/lab.sh
LAB_NODES  ?= $(or $(N),3)
# The payload build (release/payload.mk) provides `all`: bin/knode with the payload embedded.
KNODE_TARGET ?= $(if $(wildcard release/payload.mk),all,knode)
KNODE_BIN  ?= $(CURDIR)/bin/knode
E2E_RUN    ?= .
E2E_TIMEOUT ?= 120m
E2E_GOTEST := $(GO) test -tags e2e -count=1 -v -timeout $(E2E_TIMEOUT)
# The lab's names, network and dockerd are fixed, so one lab at a time: runs from several
# checkouts on one machine wait on this lock (held from the first node to the teardown)
# instead of tearing each other's lab down.
LAB_LOCK   ?= /run/knode-e2e.lock
LOCK_LAB   := exec 9>$(LAB_LOCK); flock 9;

.PHONY: lab lab-down lab-nodes lab-status lab-purge e2e e2e-smoke e2e-knode bench-up

e2e-knode:
	@$(MAKE) --no-print-directory $(KNODE_TARGET)

lab: e2e-knode ## a running cluster of N=3 node containers on this machine (see e2e/README.md)
	KNODE_BIN=$(KNODE_BIN) $(LAB_SH) cluster $(LAB_NODES)

BENCH_RUNS ?= 5
bench-up: e2e-knode ## init + N-1 joins started together, BENCH_RUNS=5 times; medians and ranges of knode's timing tables (N=4)
	@$(LOCK_LAB) rc=0; $(LAB_SH) prepare && KNODE_BIN=$(KNODE_BIN) e2e/lab/bench-up.sh $(BENCH_RUNS) $(or $(N),4) || rc=$$?; \
	  $(LAB_SH) down || { d=$$?; [ $$rc -ne 0 ] || rc=$$d; }; exit $$rc

lab-down: ## remove everything `make lab` or `make lab-nodes` made
	$(LAB_SH) down

lab-nodes: ## N=3 bare node containers (systemd, no knode)
	$(LAB_SH) up $(LAB_NODES)

lab-status: ## what of the lab exists
	@$(LAB_SH) status

lab-purge: ## lab-down, then also drop the cached node image and package cache
	$(LAB_SH) purge

e2e: e2e-knode ## end-to-end scenarios against the real binary (root, docker.io, ~minutes)
	@$(LOCK_LAB) rc=0; KNODE_BIN=$(KNODE_BIN) $(E2E_GOTEST) -run '$(E2E_RUN)' ./e2e/ || rc=$$?; \
	  $(LAB_SH) down || { d=$$?; [ $$rc -ne 0 ] || rc=$$d; }; exit $$rc

e2e-smoke: ## the lab harness alone: nodes, systemd, ping, teardown (no knode needed)
	@$(LOCK_LAB) rc=0; $(E2E_GOTEST) -run 'TestSmoke' ./e2e/ || rc=$$?; \
	  $(LAB_SH) down || { d=$$?; [ $$rc -ne 0 ] || rc=$$d; }; exit $$rc
