# ipcluster: make demo runs a local cluster and real work on it; make test
# runs every test. Both install what they need on Debian when run as root
# (libzmq3-dev, pkg-config), or say which command to run.

GO      ?= go
BIN     := bin/ipcluster
GOFLAGS ?=
export CGO_ENABLED := 1

.PHONY: all build deps mpi-deps demo test vet fmt-check fuzz bench bench-smoke bench-micro clean help

all: build

help:
	@echo "make demo   start 4 local engines, run examples/hello (hello world + a load-balanced map), stop"
	@echo "make test   vet, format check, and every test with the race detector"
	@echo "make build  build $(BIN)"
	@echo "make fuzz   run each fuzz target for FUZZTIME (default 30s)"
	@echo "make bench        ipcluster against its peers and the transport limit (a few minutes);"
	@echo "                  writes bench/results/<date>.{json,md,png}. BENCHFLAGS adds flags (-runs 3, -only 1,2)"
	@echo "make bench-smoke  every workload once at tiny size (seconds; CI runs it)"
	@echo "make bench-micro  Go micro-benchmarks of the hot paths, benchstat-ready, in bench/results/micro-<date>.txt"

# deps checks for Go, libzmq and pkg-config, and installs the last two on
# Debian when run as root.
deps:
	@command -v $(GO) >/dev/null || { echo "ipcluster needs Go 1.26 or newer: https://go.dev/dl/"; exit 1; }
	@if ! pkg-config --exists libzmq 2>/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing libzmq3-dev and pkg-config (apt-get)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libzmq3-dev pkg-config >/dev/null || exit 1; \
		else \
			echo "ipcluster needs libzmq (with CURVE) and pkg-config. On Debian or Ubuntu run:"; \
			echo "    sudo apt-get install libzmq3-dev pkg-config"; \
			exit 1; \
		fi; \
	fi

# mpi-deps checks for an MPI library with its headers and mpiexec (Open MPI
# on Debian), needed by the mpi package's tests built with -tags mpi.
mpi-deps:
	@if ! pkg-config --exists mpi 2>/dev/null || ! command -v mpiexec >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing libopenmpi-dev and openmpi-bin (apt-get)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenmpi-dev openmpi-bin >/dev/null || exit 1; \
		else \
			echo "the MPI tests need Open MPI (or another MPI with pkg-config module mpi). On Debian or Ubuntu run:"; \
			echo "    sudo apt-get install libopenmpi-dev openmpi-bin"; \
			exit 1; \
		fi; \
	fi

build: deps
	$(GO) build $(GOFLAGS) -o $(BIN) ./cmd/ipcluster

# demo uses its own profile, so it neither disturbs nor is stopped by a
# cluster you run yourself.
DEMO_ENV := IPCLUSTER_PROFILE=ipcluster-demo
demo: build
	@$(DEMO_ENV) ./$(BIN) stop >/dev/null 2>&1 || true
	$(DEMO_ENV) ./$(BIN) start -n 4 --daemon
	@$(DEMO_ENV) $(GO) run ./examples/hello; status=$$?; \
		$(DEMO_ENV) ./$(BIN) stop; exit $$status

vet: deps
	$(GO) vet ./...

fmt-check:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test: deps mpi-deps vet fmt-check build
	$(GO) test -race -timeout 15m ./...
	$(GO) vet -tags mpi ./mpi
	$(GO) test -race -timeout 5m -tags mpi ./mpi

FUZZTIME ?= 30s
fuzz: deps
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

# Benchmarks are programs, not tests: they measure and report, and assert
# nothing about time. As root on Debian they install the peers they compare
# against (python3-ipyparallel, python3-distributed, python3-mpi4py, parallel).
BENCHFLAGS ?=
bench: build
	$(GO) run ./bench $(BENCHFLAGS)

bench-smoke: build
	$(GO) run ./bench -smoke $(BENCHFLAGS)

MICRO_PKGS  := ./wire ./controller/scheduler ./engine
MICRO_COUNT ?= 6
bench-micro: deps
	@mkdir -p bench/results
	@out=bench/results/micro-$$(date -u +%F).txt; \
	$(GO) test -run '^$$' -bench . -benchmem -count $(MICRO_COUNT) $(MICRO_PKGS) > $$out || { cat $$out; exit 1; }; \
	cat $$out; echo "wrote $$out (compare two runs with: benchstat old.txt new.txt)"

clean:
	rm -rf bin
