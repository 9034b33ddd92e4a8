# mogate — the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
BIN     := bin/mogate
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
FUZZTIME ?= 10s

.PHONY: all build run test race lint vet fmt fuzz bench conformance clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/mogate

## run: mogate in dev mode on embedded defaults (127.0.0.1:8080, ./mogate-data)
run: build
	./$(BIN) serve

## test: everything CI runs: format, vet, and every test with the race detector
test: lint
	$(GO) test -race -count=1 ./...

lint: fmt vet

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

## fuzz: every fuzz target, briefly (FUZZTIME each)
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

## bench: Go benchmarks, loopback load runs and the Redis comparison, as one table
bench: build
	@command -v redis-server >/dev/null 2>&1 || { echo "installing redis-server"; apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
	$(GO) test -run '^$$' -bench 'LookupConsume|Ingest|Create$$|WALAppend' -benchmem -timeout 30m ./matcher/ > bin/gobench.txt
	$(GO) test -run '^$$' -bench 'Recovery1M|MemoryPerSession' -benchtime 1x -timeout 30m ./matcher/ >> bin/gobench.txt
	./$(BIN) bench --gobench bin/gobench.txt

conformance:
	$(GO) test -count=1 ./conformance/...

clean:
	rm -rf bin
