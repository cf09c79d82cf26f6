# release/payload.mk: build the pinned upstream components and knode's own program from Go
# module sources, compress them into assets/payload, and append that payload to the launcher:
# the release's bin/knode. Included by the top Makefile.
#
#   make                 = make all: payload + bin/knode (launcher + payload)
#   make payload         build what changed into release/_build, refresh assets/payload
#   make payload-check   stage bin/knode's payload into a temp dir, run every program's
#                        version command and compare with release/versions.env
#   make payload-clean   remove release/_build and the built payload
#
# Each component is built in its own helper module under release/build/ (committed go.mod and
# go.sum). Targets depend on their sources, so a second make with nothing changed only
# re-links nothing and recompresses nothing; the Go build cache is left alone.

include release/versions.env

.DEFAULT_GOAL := all
.PHONY: all payload payload-check payload-clean

REL_BUILD   := release/_build
REL_ROOT    := $(REL_BUILD)/root
REL_BIN     := $(REL_ROOT)/bin
PAYLOAD_DIR := assets/payload
PAYLOAD_STAMP := $(REL_BUILD)/payload.stamp

# Every helper build: static, reproducible, no VCS stamping, no go.work.
REL_GO := GOWORK=off GOFLAGS=-buildvcs=false CGO_ENABLED=0 $(GO) build -trimpath
# Inputs every component depends on besides its own module.
REL_COMMON := release/versions.env release/payload.mk
rel_src = $(wildcard release/build/$(1)/*.go) release/build/$(1)/go.mod $(wildcard release/build/$(1)/go.sum) $(REL_COMMON)

# Kubernetes version variables, as upstream's hack/lib/version.sh sets them.
KUBE_SEMVER := $(KUBERNETES_VERSION:v%=%)
KUBE_MAJOR  := $(word 1,$(subst ., ,$(KUBE_SEMVER)))
KUBE_MINOR  := $(word 2,$(subst ., ,$(KUBE_SEMVER)))
kube_x = -X $(1).gitVersion=$(KUBERNETES_VERSION) -X $(1).gitMajor=$(KUBE_MAJOR) -X $(1).gitMinor=$(KUBE_MINOR) \
	-X $(1).gitTreeState=clean -X $(1).buildDate=$(KUBERNETES_BUILD_DATE)
KUBE_LDFLAGS := -s -w $(call kube_x,k8s.io/component-base/version) $(call kube_x,k8s.io/client-go/pkg/version) \
	-X go.etcd.io/etcd/api/v3/version.GitSHA=$(ETCD_VERSION)-gomod \
	-X github.com/coredns/coredns/coremain.GitCommit=$(COREDNS_VERSION)-gomod
CONTAINERD_TAGS := no_btrfs no_devmapper no_zfs urfave_cli_no_docs
CONTAINERD_LDFLAGS := -s -w -X github.com/containerd/containerd/v2/version.Version=$(CONTAINERD_VERSION) \
	-X github.com/containerd/containerd/v2/version.Revision=$(CONTAINERD_VERSION)-gomod
CNI_PLUGINS := bridge host-local loopback portmap
CNI_PKG_bridge := main/bridge
CNI_PKG_host-local := ipam/host-local
CNI_PKG_loopback := main/loopback
CNI_PKG_portmap := meta/portmap

REL_BINARIES := $(REL_BIN)/knode $(REL_BIN)/kube $(REL_BIN)/containerd $(REL_BIN)/containerd-shim-runc-v2 $(REL_BIN)/runc \
	$(REL_BIN)/pause $(REL_BIN)/crictl $(addprefix $(REL_BIN)/cni/,$(CNI_PLUGINS))

# The release's bin/knode is the launcher (cmd/knode-launcher, package launch) with the
# payload appended; knode's own program is the payload's first file (bin/knode), built here.
LAUNCHER := $(REL_BUILD)/knode-launcher
# KNODE_APART=1 compresses knode's program into a blob of its own (knode.zst): a change in
# knode's code then recompresses 25 MB (about 1 min) instead of the whole 287 MB stream (about
# 7 min), for a larger bin/knode (63.2 MB measured with the --long=27 stream). For a
# developer's loop; releases leave it unset.
KNODE_APART ?=
MKPAYLOAD := GOWORK=off $(GO) run ./release/cmd/mkpayload

all: payload $(LAUNCHER) ## build the payload and bin/knode: the launcher with the payload appended (the default)
	@mkdir -p bin
	$(MKPAYLOAD) -append -launcher $(LAUNCHER) -out $(PAYLOAD_DIR) -bin bin/knode

# go build decides whether these are up to date; it leaves an unchanged output untouched, so
# make's mtime comparison downstream recompresses only when knode's program changed.
.PHONY: FORCE
FORCE:
$(REL_BIN)/knode: FORCE
	@mkdir -p $(@D)
	$(KNODE_GO_BUILD) -o $@ ./cmd/knode
$(LAUNCHER): FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $@ ./cmd/knode-launcher

payload: build-deps $(PAYLOAD_STAMP) ## build every component into release/_build and compress it into assets/payload

.PHONY: build-deps
build-deps: ## install the payload's build dependencies when missing (gcc, libseccomp-dev, zstd)
	@scripts/build-deps.sh

# zstd (the program, Debian package zstd) compresses 13% better than klauspost/compress's
# best level here (61.5 vs 70.3 MB), which keeps knode under its 80 MB budget;
# PAYLOAD_COMPRESSOR=go builds without it.
PAYLOAD_COMPRESSOR ?= zstd

$(PAYLOAD_STAMP): $(REL_BINARIES) $(wildcard release/*.go release/cmd/mkpayload/*.go release/manifest/*.go release/oci/*.go) $(REL_COMMON)
	$(MKPAYLOAD) -compressor $(PAYLOAD_COMPRESSOR) -root $(REL_ROOT) -out $(PAYLOAD_DIR) \
		-knode-version $(VERSION) $(if $(KNODE_APART),-knode-apart)
	@touch $@

$(REL_BIN)/kube: $(call rel_src,kube)
	cd release/build/kube && $(REL_GO) -ldflags '$(KUBE_LDFLAGS)' -o $(abspath $@) .
	@touch $@ # go build leaves an up-to-date output untouched; make compares mtimes

$(REL_BIN)/containerd: $(call rel_src,containerd)
	cd release/build/containerd && $(REL_GO) -tags '$(CONTAINERD_TAGS)' -ldflags '$(CONTAINERD_LDFLAGS)' -o $(abspath $@) .
	@touch $@ # go build leaves an up-to-date output untouched; make compares mtimes

$(REL_BIN)/containerd-shim-runc-v2: $(call rel_src,containerd)
	cd release/build/containerd && $(REL_GO) -tags '$(CONTAINERD_TAGS)' -ldflags '$(CONTAINERD_LDFLAGS)' \
		-o $(abspath $@) github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
	@touch $@ # go build leaves an up-to-date output untouched; make compares mtimes

# runc needs cgo (libseccomp, its nsexec C code): gcc, libc6-dev and libseccomp-dev, linked static.
$(REL_BIN)/runc: $(call rel_src,runc)
	@test -f /usr/lib/x86_64-linux-gnu/libseccomp.a -o -f /usr/lib/libseccomp.a || \
		{ echo "runc needs a static libseccomp and gcc: apt-get install gcc libc6-dev libseccomp-dev" >&2; exit 1; }
	cd release/build/runc && $(subst CGO_ENABLED=0,CGO_ENABLED=1,$(REL_GO)) -tags 'seccomp urfave_cli_no_docs netgo osusergo' \
		-ldflags '-s -w -X main.gitCommit=$(RUNC_VERSION)-gomod -extldflags -static' -o $(abspath $@) github.com/opencontainers/runc
	@touch $@ # go build leaves an up-to-date output untouched; make compares mtimes

$(REL_BIN)/pause: $(call rel_src,pause)
	cd release/build/pause && $(REL_GO) -ldflags '-s -w -X main.version=$(PAUSE_VERSION)' -o $(abspath $@) .
	@touch $@ # go build leaves an up-to-date output untouched; make compares mtimes

$(REL_BIN)/crictl: $(call rel_src,crictl)
	cd release/build/crictl && $(REL_GO) -ldflags '-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$(CRI_TOOLS_VERSION)' \
		-o $(abspath $@) sigs.k8s.io/cri-tools/cmd/crictl
	@touch $@ # go build leaves an up-to-date output untouched; make compares mtimes

$(REL_BIN)/cni/%: $(call rel_src,cni)
	cd release/build/cni && $(REL_GO) -ldflags '-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$(CNI_PLUGINS_VERSION)' \
		-o $(abspath $@) github.com/containernetworking/plugins/plugins/$(CNI_PKG_$*)
	@touch $@ # go build leaves an up-to-date output untouched; make compares mtimes

payload-check: ## stage bin/knode's payload in a temp dir and check every program's version
	KNODE_PAYLOAD_CHECK=$(CURDIR)/bin/knode $(GO) test -count=1 -run '^TestEmbeddedPayload$$' -v ./assets/

payload-clean: ## remove release/_build and the built payload
	rm -rf $(REL_BUILD)
	find $(PAYLOAD_DIR) -mindepth 1 ! -name README.md -delete
