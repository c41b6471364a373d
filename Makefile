# jailkeeper: `make demo` runs the agent locally behind a real Caddy;
# `make test` installs what the tests need and runs all of them.
GO        ?= go
BIN       := $(CURDIR)/bin
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
FUZZTIME  ?= 15s
export PATH := $(BIN):$(PATH)

.PHONY: all build tools deps lint test test-go fuzz demo demo-check bench bench-fleet clean port-check stress

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN)/jailkeeper ./cmd/jailkeeper

# Caddy and staticcheck come from the pinned tools module.
tools: $(BIN)/caddy $(BIN)/staticcheck

$(BIN)/caddy: tools/go.mod tools/go.sum
	cd tools && $(GO) build -o $(BIN)/caddy github.com/caddyserver/caddy/v2/cmd/caddy

$(BIN)/staticcheck: tools/go.mod tools/go.sum
	cd tools && $(GO) build -o $(BIN)/staticcheck honnef.co/go/tools/cmd/staticcheck

# Debian packages the integration tests use (zfs-fuse, sshd, gpg, Prometheus).
deps:
	scripts/install-test-deps.sh

# go.mod and go.sum of both modules must be what go mod tidy makes them:
# direct dependencies not marked indirect, nothing missing, nothing stale.
lint: $(BIN)/staticcheck
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum not tidy: run go mod tidy"; exit 1; }
	@cd tools && $(GO) mod tidy -diff || { echo "tools/go.mod/go.sum not tidy: run go mod tidy in tools/"; exit 1; }
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOOS=freebsd $(GO) vet ./...
	GOOS=freebsd $(GO) build -o /dev/null ./cmd/jailkeeper
	$(BIN)/staticcheck ./...
	GOOS=freebsd $(BIN)/staticcheck ./...

test: deps tools lint port-check test-go fuzz demo-check

test-go:
	CI=$${CI:-true} $(GO) test -race -count=1 -timeout 40m ./...

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./manifest
	$(GO) test -run '^$$' -fuzz '^FuzzExtract$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./artifact
	$(GO) test -run '^$$' -fuzz '^FuzzParseJLS$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./jails
	$(GO) test -run '^$$' -fuzz '^FuzzParseGet$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./zfs

# Not part of `make test`: 24 services deployed at once, parallel 8, with
# the real process runtime, 20 times in a row; no release may be marked
# failed (an executable busy, ETXTBSY, or an address in use never is).
STRESS_COUNT ?= 20
stress:
	JAILKEEPER_STRESS=1 $(GO) test -race -count=$(STRESS_COUNT) -timeout 60m -run '^TestStressParallelDeploys$$' ./process

# The FreeBSD port: rc.d scripts under a stand-in rc.subr, plist vs Makefile.
port-check:
	packaging/freebsd/port-check.sh

bench: tools
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Not part of `make test`: issue 11's fleet figures (converge 10, 200 and
# 1,000 services in one commit, rollback, idle CPU, RSS) with the process
# runtime, real Caddy and real git, printed as ratios on this machine.
# Its releases take addresses from 127.76.0.0/16.
BENCH_FLEET_SIZES ?= 10,200,1000
bench-fleet: tools
	JAILKEEPER_BENCH_FLEET=1 JAILKEEPER_BENCH_FLEET_SIZES=$(BENCH_FLEET_SIZES) \
		$(GO) test -count=1 -timeout 120m -run '^TestFleetBench$$' -v ./agent

demo: build tools
	scripts/demo.sh

# The demo, run to its first answer and stopped, on ports the tests don't use.
demo-check: build tools
	DEMO_CHECK=1 DEMO_HTTP=127.0.0.1:18080 DEMO_AGENT=127.0.0.1:19180 scripts/demo.sh

clean:
	rm -rf $(BIN) .demo
