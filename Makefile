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

.PHONY: help build run test test-browser test-browser-broken test-short vet tidy-check smoke chaos chaos-long chaos-broken soak bench fuzz clean cluster-start cluster-stop cluster-kill cluster-restart cluster-status

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/presenced
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/presenced ./cmd/presenced

run: build ## start one node on 127.0.0.1:7070 (open dev mode, data in ./data)
	./$(BIN)/presenced

test: vet tidy-check ## vet, go.mod check, every test with -race, the browser tests (headless Chromium), the README tour against a real node, and the short chaos run
	$(GO) test -race -count=1 -skip '^TestBrowser' ./...
	$(MAKE) --no-print-directory test-browser
	$(MAKE) --no-print-directory smoke
	$(MAKE) --no-print-directory chaos

CHAOS_FLAGS ?=
chaos: build ## a short chaos run (~2 min): 5 nodes, 600 sessions, faults for 75 s; non-zero exit on any violation
	$(GO) build -o $(BIN)/presence-chaos ./cmd/presence-chaos
	./$(BIN)/presence-chaos --bin $(BIN)/presenced --nodes 5 --users 200 --tabs 3 --rooms 8 --duration 75s --fault-every 5s $(CHAOS_FLAGS)

DURATION ?= 30m
chaos-long: build ## chaos for DURATION (default 30m): 5 nodes, 2,100 sessions, a fault every ~12 s
	$(GO) build -o $(BIN)/presence-chaos ./cmd/presence-chaos
	./$(BIN)/presence-chaos --bin $(BIN)/presenced --nodes 5 --users 700 --tabs 3 --rooms 10 --duration $(DURATION) --fault-every 8s $(CHAOS_FLAGS)

SOAK ?= 10m
soak: build ## the chaos workload alone for SOAK (default 10m): 5 nodes, 2,100 sessions churning, no faults; fails if a node's goroutines or memory grow
	$(GO) build -o $(BIN)/presence-chaos ./cmd/presence-chaos
	./$(BIN)/presence-chaos --bin $(BIN)/presenced --soak --nodes 5 --users 700 --tabs 3 --rooms 10 --duration $(SOAK) --sample-every 10s $(CHAOS_FLAGS)

chaos-broken: ## the short chaos run against a deliberately broken build (failure handling off): passes only if the oracle reports ghosts
	$(GO) build -tags chaos_broken -o $(BIN)/presenced-broken ./cmd/presenced
	$(GO) build -o $(BIN)/presence-chaos ./cmd/presence-chaos
	@out=$$(mktemp); ./$(BIN)/presence-chaos --bin $(BIN)/presenced-broken --nodes 5 --users 200 --tabs 3 --rooms 8 --duration 45s --fault-every 5s $(CHAOS_FLAGS) | tee $$out || true; \
	  if grep -Eq '^\| ghost \| [1-9]' $$out; then echo "chaos-broken: the oracle caught the broken build (ghosts reported), as it must"; rm -f $$out; \
	  else echo "chaos-broken: the broken build got through the oracle"; rm -f $$out; exit 1; fi

test-browser: ## the end-to-end browser tests alone (headless Chromium against a 2-node cluster; they skip without Chromium unless CI=true)
	$(GO) test -race -count=1 -run '^TestBrowser' ./cmd/presenced/

test-browser-broken: ## the browser tests against a deliberately broken presence.js (no leave on pagehide): passes only if TestBrowserPresence fails
	@out=$$(mktemp); $(GO) test -count=1 -tags presence_broken -run '^TestBrowserPresence$$' ./cmd/presenced/ > $$out 2>&1 || true; \
	  grep -E 'DELIBERATELY|--- (PASS|FAIL|SKIP)|^(ok|FAIL)|web_browser_test.go:[0-9]+: .*not within' $$out; \
	  if grep -q -- '--- FAIL: TestBrowserPresence' $$out; then echo "test-browser-broken: the browser test caught the broken presence.js, as it must"; rm -f $$out; \
	  else echo "test-browser-broken: the broken presence.js got through the browser test"; rm -f $$out; exit 1; fi

test-short: ## tests without -race (quick local loop)
	$(GO) test -count=1 ./...

vet: ## go vet and gofmt check
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

tidy-check: ## fail if go.mod/go.sum are not tidy (go mod tidy -diff changes nothing)
	@$(GO) mod tidy -diff > /dev/null || { echo "go.mod/go.sum drift: run 'go mod tidy' and commit"; $(GO) mod tidy -diff; exit 1; }

smoke: build ## start a node on free ports and run scripts/smoke.sh (the README tour) against it
	@dir=$$(mktemp -d); \
	  ./$(BIN)/presenced --listen 127.0.0.1:0 --raft-addr 127.0.0.1:0 --gossip-addr 127.0.0.1:0 --data-dir $$dir --node-name smoke \
	    > $$dir/node.log 2>&1 & pid=$$!; \
	  trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null; rm -rf '"$$dir" EXIT; \
	  for i in $$(seq 1 200); do addr=$$(sed -n 's/.*"msg":"presenced serving".*"listen":"\([^"]*\)".*/\1/p' $$dir/node.log); [ -n "$$addr" ] && break; sleep 0.05; done; \
	  [ -n "$$addr" ] || { cat $$dir/node.log; exit 1; }; \
	  scripts/smoke.sh http://$$addr || { cat $$dir/node.log; exit 1; }

BENCH_OUT ?= bin/bench-report.md
bench: ## the performance report (≤ 15 min): Go benchmarks of the hot paths, then presence-bench (3 nodes, 58.5k sessions) beside seed 001's Redis design; writes BENCH_OUT (bin/bench-report.md) and its .json
	GO=$(GO) scripts/bench.sh $(BENCH_OUT)

fuzz: ## run every fuzz target for FUZZTIME each
	@for pkg in ./crdt ./session ./gateway ./cluster ./cmd/presenced; do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -timeout 0 $$pkg; \
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
