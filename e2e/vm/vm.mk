# e2e/vm/vm.mk: the VM lab (issue 11): QEMU VMs booting Debian 12 (real kernel, systemd,
# cgroup v2). Included by the top Makefile; uses e2e-knode, KNODE_BIN and LOCK_LAB of e2e.mk.
#
#   make vm-lab [N=3]       N VMs, provision.sh init on the first and join on the others,
#                           every node Ready, status; the VMs hold the lab lock until vm-lab-down
#   make vm-lab-down        stop the VMs, remove taps, bridge and namespace (journals kept)
#   make vm-e2e [VM_E2E_RUN=re]  the VM scenarios (go test -tags vme2e ./e2e/vm), then vm-lab-down
#   make vm-smoke           1 master + 1 worker to Ready, then reset (TestVMSmoke)
# Every knob of e2e/vm/vm.sh is an environment variable (KNODE_VM_*; `e2e/vm/vm.sh help`).

VM_SH       := e2e/vm/vm.sh
VM_NODES    ?= $(or $(N),3)
VM_E2E_RUN  ?= .
VM_E2E_TIMEOUT ?= 180m
VM_GOTEST   := $(GO) test -tags vme2e -count=1 -v -timeout $(VM_E2E_TIMEOUT)

.PHONY: vm-lab vm-lab-down vm-e2e vm-smoke vm-image

vm-lab: e2e-knode ## N=3 QEMU VMs (Debian 12, KVM or TCG) as a cluster: init + joins, all Ready
	KNODE_BIN=$(KNODE_BIN) $(VM_SH) cluster $(VM_NODES)

vm-lab-down: ## stop the VM lab: VMs, taps, bridge, namespace (consoles and journals kept)
	$(VM_SH) down

vm-image: ## build (or reuse) the VM lab's Debian 12 image
	$(VM_SH) image

vm-e2e: e2e-knode ## VM scenarios against the real binary (root, qemu; slow under TCG)
	@$(LOCK_LAB) rc=0; KNODE_VM_LOCK_HELD=1 KNODE_BIN=$(KNODE_BIN) $(VM_GOTEST) -run '$(VM_E2E_RUN)' ./e2e/vm/ || rc=$$?; \
	  $(VM_SH) down || { d=$$?; [ $$rc -ne 0 ] || rc=$$d; }; exit $$rc

vm-smoke: e2e-knode ## 1 master + 1 worker VM to Ready, then reset; prints its duration
	@$(LOCK_LAB) rc=0; t0=$$(date +%s); KNODE_VM_LOCK_HELD=1 KNODE_BIN=$(KNODE_BIN) $(VM_GOTEST) -run 'TestVMSmoke$$' ./e2e/vm/ || rc=$$?; \
	  $(VM_SH) down || { d=$$?; [ $$rc -ne 0 ] || rc=$$d; }; echo "vm-smoke: $$(( $$(date +%s) - t0 )) s, exit $$rc"; exit $$rc
