# knode — build, run and test. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X knode.dev/knode/version.Version=$(VERSION)

.PHONY: help knode test test-unit test-root
help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

knode: ## build bin/knode without the payload (fast)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/knode ./cmd/knode

test-unit: ## unit tests: no root, no payload, -race
	$(GO) test -race -count=1 ./...

test: test-unit ## all tests this machine can run (unit + root integration)

-include release/payload.mk
-include e2e/e2e.mk
