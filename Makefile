# presenced — make targets. `make run` starts a single node on its embedded
# default; `make test` is what CI runs.
SHELL := bash
.SHELLFLAGS := -o pipefail -euc
.DEFAULT_GOAL := help

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
GO      ?= go
BIN     := bin
FUZZTIME ?= 30s

.PHONY: help build run test test-short vet tidy-check smoke bench fuzz clean cluster-start cluster-stop cluster-kill cluster-restart cluster-status

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/presenced
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/presenced ./cmd/presenced

run: build ## start one node on 127.0.0.1:7070 (open dev mode, data in ./data)
	./$(BIN)/presenced

test: vet tidy-check ## vet, go.mod check, every test with -race, and the README tour against a real node
	$(GO) test -race -count=1 ./...
	$(MAKE) --no-print-directory smoke

smoke: build ## start a node on random ports and run scripts/smoke.sh (the README tour) against it
	@port=$$((20000 + RANDOM % 20000)); dir=$$(mktemp -d); \
	  ./$(BIN)/presenced --listen 127.0.0.1:$$port --raft-addr 127.0.0.1:$$((port + 1)) --gossip-addr 127.0.0.1:$$((port + 2)) --data-dir $$dir --node-name smoke \
	    > $$dir/node.log 2>&1 & pid=$$!; \
	  trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null; rm -rf '"$$dir" EXIT; \
	  for i in $$(seq 1 100); do curl -sf 127.0.0.1:$$port/healthz >/dev/null && break; sleep 0.05; done; \
	  scripts/smoke.sh http://127.0.0.1:$$port || { cat $$dir/node.log; exit 1; }

test-short: ## tests without -race (quick local loop)
	$(GO) test -count=1 ./...

vet: ## go vet and gofmt check
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

tidy-check: ## fail if go.mod/go.sum are not tidy
	@cp go.mod /tmp/presenced.go.mod.bak; cp go.sum /tmp/presenced.go.sum.bak; \
	  $(GO) mod tidy; \
	  if ! diff -q go.mod /tmp/presenced.go.mod.bak >/dev/null || ! diff -q go.sum /tmp/presenced.go.sum.bak >/dev/null; then \
	    cp /tmp/presenced.go.mod.bak go.mod; cp /tmp/presenced.go.sum.bak go.sum; \
	    echo "go.mod/go.sum drift: run 'go mod tidy' and commit"; exit 1; fi

bench: ## Go benchmarks of the hot paths (crdt merge, room listing, counts, user batch, raft write)
	$(GO) test -run '^$$' -bench . -benchmem ./crdt/ ./session/ ./gateway/ ./cluster/

fuzz: ## run every fuzz target for FUZZTIME each
	@for pkg in ./crdt ./session ./gateway ./cluster ./cmd/presenced; do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

N ?= 3
cluster-start: build ## start a local cluster of N nodes (default 3) on 127.0.0.1 (see scripts/cluster.sh)
	scripts/cluster.sh start $(N)

cluster-stop: ## stop the local cluster gracefully
	scripts/cluster.sh stop

cluster-kill: ## kill -9 node NODE of the local cluster
	scripts/cluster.sh kill $(NODE)

cluster-restart: ## start node NODE again (a new incarnation)
	scripts/cluster.sh restart $(NODE)

cluster-status: ## list running nodes and their readiness
	scripts/cluster.sh status

clean: ## remove build output and the default data dir
	rm -rf $(BIN) data cluster-data
