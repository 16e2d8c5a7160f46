# imapcopy: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO       ?= go
BIN      := $(CURDIR)/bin
TOOLS    := $(BIN)/tools
export PATH := $(TOOLS):$(PATH)

# Pinned code generators (see buf.gen.yaml).
BUF_VERSION                := v1.75.0
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GRPC_GATEWAY_VERSION       := v2.34.0
# Pinned linter (.golangci.yml).
GOLANGCI_LINT_VERSION      := v2.15.0

# Debian packages the tests need: real Dovecot, real redis-server, mbsync for the benchmark,
# promtool (package prometheus) for the alert rules of deploy/monitoring, headless chromium for
# the page's browser tests (services/standalone TestPage).
TEST_PACKAGES := dovecot-imapd redis-server isync prometheus chromium
TEST_COMMANDS := dovecot redis-server mbsync promtool chromium

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build bin/imapcopy-api, bin/imapcopy-copier, bin/imapcopy (standalone) and bin/imapcopy-admin
	$(GO) build -o $(BIN)/imapcopy-api ./services/api
	$(GO) build -o $(BIN)/imapcopy-admin ./services/admin
	$(GO) build -o $(BIN)/imapcopy-copier ./services/copier
	$(GO) build -o $(BIN)/imapcopy ./services/standalone

.PHONY: run
run: build ## start the product in standalone mode (embedded NATS, status on local disk)
	$(BIN)/imapcopy $(ARGS)

.PHONY: demo
demo: build ## a whole sync in about a minute: two local IMAP servers, bin/imapcopy, the gRPC calls, the report
	$(GO) build -o $(BIN)/imapcopy-demo ./services/standalone/cmd/demo
	$(BIN)/imapcopy-demo -imapcopy $(BIN)/imapcopy $(ARGS)

.PHONY: test
test: test-deps ## run every test (race detector on) against real Dovecot, redis-server and an embedded NATS
	$(GO) vet work
	$(GO) test -race -count=1 -timeout 14m -v work

# One target per `go test -fuzz` invocation, as go requires: PACKAGE:TARGET, run from the
# module that holds the package.
FUZZTIME    ?= 10s
FUZZ_PKG    := mailcopy:FuzzIdentity mailcopy:FuzzDiffTwins imapappend:FuzzEncodeMailbox syncapi:FuzzCheckAccount foldermap:FuzzMap
FUZZ_COPIER := FuzzParseAccountURL

.PHONY: fuzz
fuzz: ## run each fuzz target for FUZZTIME (10s) on top of its committed testdata/fuzz corpus
	@set -e; for t in $(FUZZ_PKG); do \
	  echo "== fuzz $$t"; \
	  (cd pkg && $(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) ./$${t%%:*}/); done; \
	for t in $(FUZZ_COPIER); do \
	  echo "== fuzz copier:$$t"; \
	  (cd services/copier && $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) .); done

.PHONY: soak
soak: test-deps ## the soak (issue 14): 200 small syncs with random faults through one standalone process; goroutines, open files and RSS flat (a few minutes)
	cd services/standalone && $(GO) test -tags soak -run '^TestSoak$$' -count=1 -timeout 15m -v .

.PHONY: test-deps
test-deps: ## install the Debian packages the tests need (as root), or say how
	@$(MAKE) --no-print-directory test-deps-cyrus test-deps-courier
	@missing=""; for c in $(TEST_COMMANDS); do \
	  command -v $$c >/dev/null 2>&1 || [ -x /usr/sbin/$$c ] || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing $(TEST_PACKAGES) (missing:$$missing)"; \
	    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TEST_PACKAGES) >/dev/null; \
	  else \
	    echo "the tests need$$missing; install them with:"; \
	    echo "  sudo apt-get install -y $(TEST_PACKAGES)"; \
	    exit 1; \
	  fi; \
	fi

# Cyrus IMAP for the tests: Debian's cyrus-imapd conflicts with dovecot-imapd (both provide
# imap-server), so its packages are unpacked into CYRUS_DIR, never installed; the libraries
# it links and saslpasswd2 are installed normally. pkg/imaptest looks for it there
# (IMAPTEST_CYRUS_DIR overrides the place).
CYRUS_DIR      ?= /var/cache/imapcopy-test/cyrus
CYRUS_PACKAGES := cyrus-common cyrus-imapd
CYRUS_LIBS     := libxapian30 libpcre3 libical3 libwrap0 sasl2-bin
export IMAPTEST_CYRUS_DIR := $(CYRUS_DIR)

.PHONY: test-deps-cyrus
test-deps-cyrus: ## unpack Cyrus IMAP into CYRUS_DIR for the tests (as root), or say how
	@if [ ! -x $(CYRUS_DIR)/usr/lib/cyrus/bin/master ] || ! dpkg -s $(CYRUS_LIBS) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "unpacking $(CYRUS_PACKAGES) into $(CYRUS_DIR), installing $(CYRUS_LIBS)"; \
	    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(CYRUS_LIBS) >/dev/null && \
	    tmp=$$(mktemp -d) && chmod 755 $$tmp && (chown _apt $$tmp 2>/dev/null; true) && (cd $$tmp && apt-get download -qq $(CYRUS_PACKAGES)) && \
	    rm -rf $(CYRUS_DIR) && mkdir -p $(CYRUS_DIR) && \
	    for p in $$tmp/*.deb; do dpkg-deb -x $$p $(CYRUS_DIR) || exit 1; done && rm -rf $$tmp; \
	  else \
	    echo "the tests need Cyrus IMAP unpacked into $(CYRUS_DIR); as root run: make test-deps-cyrus"; \
	    exit 1; \
	  fi; \
	fi

# Courier-IMAP for the tests, the same way (courier-imap conflicts with dovecot-imapd).
COURIER_DIR      ?= /var/cache/imapcopy-test/courier
COURIER_PACKAGES := courier-imap courier-base courier-authlib
COURIER_LIBS     := libidn12 libcourier-unicode4 libgamin0 libgdbm6
export IMAPTEST_COURIER_DIR := $(COURIER_DIR)

.PHONY: test-deps-courier
test-deps-courier: ## unpack Courier-IMAP into COURIER_DIR for the tests (as root), or say how
	@if [ ! -x $(COURIER_DIR)/usr/bin/imapd ] || ! dpkg -s $(COURIER_LIBS) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "unpacking $(COURIER_PACKAGES) into $(COURIER_DIR), installing $(COURIER_LIBS)"; \
	    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(COURIER_LIBS) >/dev/null && \
	    tmp=$$(mktemp -d) && chmod 755 $$tmp && (chown _apt $$tmp 2>/dev/null; true) && (cd $$tmp && apt-get download -qq $(COURIER_PACKAGES)) && \
	    rm -rf $(COURIER_DIR) && mkdir -p $(COURIER_DIR) && \
	    for p in $$tmp/*.deb; do dpkg-deb -x $$p $(COURIER_DIR) || exit 1; done && rm -rf $$tmp; \
	  else \
	    echo "the tests need Courier-IMAP unpacked into $(COURIER_DIR); as root run: make test-deps-courier"; \
	    exit 1; \
	  fi; \
	fi

.PHONY: bench
bench: test-deps ## imapcopy vs mbsync on loopback and an emulated WAN; BENCH_SIZE=small takes about a minute (BENCH_* settings: pkg/copybench/cmd/copybench)
	$(GO) build -o $(BIN)/imapcopy-copier ./services/copier
	$(GO) run ./pkg/copybench/cmd/copybench

.PHONY: deploy-check
deploy-check: test-deps ## render every kustomize overlay, check manifests, Dockerfiles, alert rules (promtool) and the dashboard offline
	cd deploy && $(GO) test -count=1 -v .

.PHONY: fleet-test
fleet-test: test-deps ## the whole fleet on one machine: 3-node NATS, Redis, 2 apis, 3 copiers, 30 syncs, kills mid-run
	cd deploy && $(GO) test -tags fleet -count=1 -timeout 15m -v ./fleet/

.PHONY: tools
tools: $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc $(TOOLS)/protoc-gen-grpc-gateway $(TOOLS)/protoc-gen-openapiv2 $(TOOLS)/golangci-lint ## install the pinned code generators and linter into bin/tools

$(TOOLS)/buf:
	GOBIN=$(TOOLS) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(TOOLS)/protoc-gen-go-grpc:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(TOOLS)/protoc-gen-grpc-gateway:
	GOBIN=$(TOOLS) $(GO) install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(GRPC_GATEWAY_VERSION)
$(TOOLS)/protoc-gen-openapiv2:
	GOBIN=$(TOOLS) $(GO) install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$(GRPC_GATEWAY_VERSION)
$(TOOLS)/golangci-lint:
	GOBIN=$(TOOLS) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

GRPCURL_VERSION := v1.9.4
.PHONY: grpcurl
grpcurl: $(TOOLS)/grpcurl ## install grpcurl into bin/tools (bin/tools/grpcurl)
$(TOOLS)/grpcurl:
	GOBIN=$(TOOLS) $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

.PHONY: generate
generate: tools ## regenerate the Go code from proto/ (committed)
	buf generate

.PHONY: check-generated
check-generated: generate ## fail when the committed generated code is stale
	@git diff --exit-code -- proto/gen proto/openapi || { echo "proto/gen or proto/openapi is stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- proto/gen proto/openapi)" || { echo "proto/gen or proto/openapi has uncommitted files: run 'make generate' and commit"; exit 1; }

.PHONY: lint
lint: tools ## buf lint, gofmt, go vet and golangci-lint (.golangci.yml) in every module of go.work
	buf lint
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^proto/gen/')); test -z "$$out" || { echo "gofmt would change: $$out"; exit 1; }
	$(GO) vet work
	cd deploy && $(GO) vet -tags fleet ./fleet/
	cd services/standalone && $(GO) vet -tags soak .
	@# golangci-lint lints one module at a time: run it in each module of the workspace.
	@for dir in $$($(GO) list -m -f '{{.Dir}}'); do \
	  echo "golangci-lint $${dir#$(CURDIR)/}"; \
	  (cd $$dir && golangci-lint run --config $(CURDIR)/.golangci.yml ./...) || exit 1; \
	done

.PHONY: clean
clean: ## remove bin/
	rm -rf $(BIN)
