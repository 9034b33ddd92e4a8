# mogate — the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
BIN     := bin/mogate
# The tag when HEAD has one behind it (v0.1.0, v0.1.0-3-g1a2b3c4), else the
# newest release of CHANGELOG.md marked untagged (v0.1.0-untagged-g1a2b3c4).
RELEASE := $(shell sed -n 's/^\#\# \[\([0-9][0-9.]*\)\].*/\1/p' CHANGELOG.md | head -n 1)
VERSION ?= $(shell git describe --tags --dirty 2>/dev/null || echo "v$(RELEASE)-untagged-g$$(git rev-parse --short HEAD 2>/dev/null || echo dev)")
LDFLAGS := -X main.version=$(VERSION)
FUZZTIME ?= 10s

.PHONY: all build image version run test deps race lint vet fmt golangci fuzz bench conformance clean

all: build

## version: what make build stamps into the binary
version:
	@echo $(VERSION)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/mogate

## image: the container image (Dockerfile), stamped like build; docker or podman
CONTAINER ?= $(shell command -v docker 2>/dev/null || command -v podman 2>/dev/null || echo docker)
image:
	$(CONTAINER) build --build-arg VERSION=$(VERSION) -t mogate:$(VERSION) .

## run: mogate in dev mode on embedded defaults (127.0.0.1:8080, ./mogate-data)
run: build
	./$(BIN) serve

## test: everything CI runs: format, vet, golangci-lint, and every test with the race detector
test: deps lint
	$(GO) test -race -count=1 ./...

# Debian packages the tests drive: Chromium (hosted page), redis-server
# (durability tests start their own), promtool (deploy/ alert rules).
# Installed when missing; needs root or sudo. The install starts no service
# and leaves none enabled (the tests start their own redis-server, and the
# prometheus package would otherwise serve on :9090): policy-rc.d refuses
# every start while apt runs (an existing one is kept), recommends are left
# out (prometheus-node-exporter would serve on :9100; Chromium's fonts are named), and on a systemd host
# the units of the packages just installed are disabled.
DEB_DEPS := chromium:chromium chromium:fonts-liberation redis-server:redis-server promtool:prometheus
POLICY_RC ?= /usr/sbin/policy-rc.d
SYSTEMD_RUN ?= /run/systemd/system
deps:
	@missing=""; for d in $(DEB_DEPS); do cmd=$${d%%:*}; pkg=$${d#*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages the tests need:$$missing"; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  if [ ! -e $(POLICY_RC) ]; then trap "$$sudo rm -f $(POLICY_RC)" EXIT INT TERM; \
	    printf '#!/bin/sh\nexit 101\n' | $$sudo tee $(POLICY_RC) >/dev/null && $$sudo chmod 0755 $(POLICY_RC) || exit 1; fi; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null; rc=$$?; \
	  if [ -d $(SYSTEMD_RUN) ]; then for pkg in $$missing; do \
	    case $$pkg in redis-server|prometheus) $$sudo systemctl disable --now $$pkg.service >/dev/null 2>&1 || true;; esac; done; fi; \
	  exit $$rc; \
	fi

## lint: gofmt, go vet and golangci-lint (.golangci.yml; pinned in tools/lint/go.mod)
lint: fmt vet golangci

GOLANGCI := $(GO) tool -modfile=tools/lint/go.mod golangci-lint
golangci:
	$(GOLANGCI) run ./...

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# vet type-checks every package and its tests for amd64 and for a 32-bit
# target too (386: int is 32 bits there, so constants that overflow it fail).
vet:
	$(GO) vet ./...
	GOARCH=386 $(GO) vet ./...

## fuzz: every fuzz target, briefly (FUZZTIME each)
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

## bench: Go benchmarks, instruction counts (callgrind; n/a without valgrind), loopback load runs and the Redis comparison, as one table
bench: build deps
	@$(MAKE) -s deps DEB_DEPS=valgrind:valgrind || echo "valgrind not installed: the instruction rows will read n/a"
	$(GO) test -run '^$$' -bench 'LookupConsume|DependentLoad|Ingest|Create$$|WALAppend' -benchmem -timeout 30m ./matcher/memstore/ > bin/gobench.txt
	$(GO) test -run '^$$' -bench 'Recovery1M|Restart1M|MemoryPerSession|ProcessedIDMemory' -benchtime 1x -timeout 30m ./matcher/memstore/ >> bin/gobench.txt
	$(GO) test -run '^$$' -bench 'WebhookTwilio' -benchmem -timeout 30m ./gateway/ >> bin/gobench.txt
	$(GO) test -c -o bin/memstore.test ./matcher/memstore/
	./$(BIN) bench --gobench bin/gobench.txt --callgrind-test bin/memstore.test

conformance:
	$(GO) test -count=1 ./conformance/...

clean:
	rm -rf bin
