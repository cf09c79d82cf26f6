# knode — build, run and test. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X knode.dev/knode/version.Version=$(VERSION)
# urfave_cli_no_docs leaves out urfave/cli's man page and markdown writers (and the markdown
# library behind them), which knode never calls: 0.25 MB.
KNODE_GO_BUILD := CGO_ENABLED=0 $(GO) build -trimpath -tags urfave_cli_no_docs -ldflags '$(LDFLAGS)'
KNODE_BUILD := $(KNODE_GO_BUILD) -o bin/knode ./cmd/knode

.PHONY: help knode test check demo bench
# staticcheck's release for this Go version (2026.2.x supports go1.26), installed into bin/.
STATICCHECK_VERSION ?= v0.8.2
help: ## list targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

knode: ## build bin/knode without the payload (fast): knode's program alone, which runs everything but the components
	$(KNODE_BUILD)

test: ## unit tests (-race, no payload) + root integration tests (network namespaces; skipped without root)
	$(GO) test -race -count=1 ./...

check: ## static checks: go mod tidy -diff, go vet, gofmt, staticcheck (fails on any finding)
	$(GO) mod tidy -diff
	$(GO) vet ./...
	@out=$$(git ls-files --cached --others --exclude-standard '*.go' | while read -r f; do [ ! -e "$$f" ] || echo "$$f"; done | xargs gofmt -l) && \
		if [ -n "$$out" ]; then echo "gofmt -l: not formatted:"; echo "$$out"; exit 1; fi
	@[ -x bin/staticcheck ] && bin/staticcheck -version | grep -q '($(STATICCHECK_VERSION:v%=%))' || \
		GOBIN=$(CURDIR)/bin $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	bin/staticcheck ./...

demo: knode ## form a 3-agent cluster on loopback as any user (--dry-run --foreground) and show `knode status`
	scripts/demo.sh 3

bench: ## gossip formation benchmark: 10, 50, 200 agents (medians of 3), then bare memberlist's floor
	$(GO) test -run XXX -bench Formation -benchtime 3x -timeout 60m ./agent
	$(GO) test -run XXX -bench MemberlistFloor -benchtime 3x -timeout 30m ./gossip

-include release/payload.mk
-include e2e/e2e.mk
-include e2e/vm/vm.mk
