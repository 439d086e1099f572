# ipcluster: make demo runs a local cluster and real work on it; make test
# runs every test. Both install what they need on Debian when run as root
# (libzmq3-dev, pkg-config), or say which command to run.

GO      ?= go
BIN     := bin/ipcluster
GOFLAGS ?=
export CGO_ENABLED := 1

.PHONY: all build deps mpi-deps mpich-deps ssh-deps test-mpich demo test vet fmt-check fuzz bench bench-smoke bench-micro clean help

all: build

help:
	@echo "make demo   start 4 local engines, run examples/hello (hello world + a load-balanced map), stop"
	@echo "make test   vet, format check, and every test with the race detector, real MPI jobs included"
	@echo "make test-mpich  the mpi package against MPICH, as 4 ranks (make test runs it)"
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

# The binary links MPI (build tag mpi) when pkg-config finds it (checked when
# the recipe runs: make test installs MPI first), so that
# engines started by ipcluster mpiexec can run MPI collectives.

build: deps
	$(GO) build $(GOFLAGS) $$(pkg-config --exists mpi 2>/dev/null && echo -tags mpi) -o $(BIN) ./cmd/ipcluster

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

# ssh-deps installs OpenSSH (client and server): the remote-access tests
# run a real sshd on a loopback port, as the test's own process.
ssh-deps:
	@if ! command -v ssh >/dev/null || [ ! -x /usr/sbin/sshd ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing openssh-client and openssh-server (apt-get)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-client openssh-server >/dev/null || exit 1; \
		else \
			echo "make test needs OpenSSH's client and server. On Debian or Ubuntu run:"; \
			echo "    sudo apt-get install openssh-client openssh-server"; \
			exit 1; \
		fi; \
	fi

# mpich-deps installs MPICH beside Open MPI (which stays the default), to
# check that the binding builds and runs against both.
mpich-deps:
	@if ! pkg-config --exists mpich 2>/dev/null || ! command -v mpiexec.mpich >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing libmpich-dev and mpich (apt-get)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libmpich-dev mpich >/dev/null || exit 1; \
		else \
			echo "make test-mpich needs MPICH. On Debian or Ubuntu run:"; \
			echo "    sudo apt-get install libmpich-dev mpich"; \
			exit 1; \
		fi; \
	fi

# test-mpich builds the mpi package against MPICH (a pkg-config module "mpi"
# that is MPICH's) and runs its tests as 4 ranks under MPICH's mpiexec.
MPICH_PC := $(CURDIR)/bin/mpich-pkgconfig
test-mpich: deps mpich-deps
	@mkdir -p $(MPICH_PC) && ln -sf "$$(pkg-config --variable=pcfiledir mpich)/mpich.pc" $(MPICH_PC)/mpi.pc
	PKG_CONFIG_PATH=$(MPICH_PC) $(GO) test -c -tags mpi -o bin/mpi-mpich.test ./mpi
	IPCLUSTER_TEST_MPIEXEC=mpiexec.mpich ./bin/mpi-mpich.test -test.run TestUnderMPIExec -test.timeout 5m

# As root, test also runs a real single-node SLURM (.ci/slurm up: installed
# and started for the tests, stopped by its pids after them); otherwise the
# SLURM tests skip, saying so.
# The zmqpoll tag builds the portable poller (zmq_poll, as on macOS) in
# place of the Linux one, so that the laptops' transport is tested here too.
test: deps mpi-deps mpich-deps ssh-deps vet fmt-check build
	@export IPCLUSTER_REQUIRE_SSHD=1; \
	if [ "$$(id -u)" = 0 ]; then ./.ci/slurm up || exit 1; \
		export IPCLUSTER_REQUIRE_SLURM=1; \
	else echo "not root: the SLURM tests skip (sudo ./.ci/slurm up starts a test SLURM)"; fi; \
	status=0; \
	$(GO) test -race -timeout 15m ./... || status=1; \
	$(GO) test -race -timeout 5m -tags zmqpoll ./transport/zmqnet ./client ./engine || status=1; \
	$(GO) vet -tags mpi ./mpi ./engine ./cmd/ipcluster ./examples/... || status=1; \
	$(GO) test -race -timeout 5m -tags mpi ./mpi ./examples/heat || status=1; \
	$(GO) test -race -timeout 5m -tags mpi -run 'MPI' ./cmd/ipcluster ./launchers || status=1; \
	$(MAKE) --no-print-directory test-mpich || status=1; \
	if [ "$$(id -u)" = 0 ]; then ./.ci/slurm down; fi; \
	exit $$status

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
