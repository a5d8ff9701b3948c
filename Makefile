# Portico — the two commands: `make run` and `make test`.
# Both install what the build and the tests need (cmake and a C compiler for Pingora, protoc
# for the etcd client, etcd itself for the store) with apt-get when run as root, or stop and
# print the exact command to run.

CARGO ?= cargo
SHELL := /bin/bash
# Where cargo puts what it builds, as cargo itself says (`target`, or $CARGO_TARGET_DIR, or a
# cargo config's build.target-dir); `target` when cargo cannot answer (not installed yet).
TARGET_DIR := $(or $(shell $(CARGO) metadata --format-version 1 --no-deps 2>/dev/null | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p'),target)

.PHONY: help deps test-deps screenshot build build-demo run run-single sim-netns sim-clean test fmt bench bench-micro bench-failover bench-config bench-rollout bench-scale bench-deps clean

help:
	@echo "make run             build and start the demo: three regions on this machine (README: the tour; docs/regions.md; ARGS=--acme: certificates from Pebble)"
	@echo "make run-single      one edge node with three demo origins"
	@echo "make test            format check, clippy -D warnings, every test"
	@echo "make bench           throughput against nginx and HAProxy (ARGS=... for options)"
	@echo "make bench-tls       TLS termination against nginx and HAProxy: full and resumed handshakes, TLS keep-alive, HTTP/2"
	@echo "make bench-rules     10 rules against none, nginx and HAProxy with the same; rate-limit accuracy"
	@echo "make bench-micro     criterion micro-benchmarks of route matching and selection"
	@echo "make bench-failover  failover benchmark against nginx, HAProxy and Front Door-style probing"
	@echo "make bench-config    config propagation to three regions through etcd, and errors during reloads"
	@echo "make bench-rollout   a good and a valid-but-wrong document pushed to three regions under load: waves, gates, rollback"
	@echo "make bench-scale     cost per origin and per route: CPU, memory, reloads at 10 to 5,000 origins, beside HAProxy and nginx"
	@echo "make bench-hostile   slow clients, huge heads, smuggling shapes, TLS and h2 floods against Portico, nginx and HAProxy"
	@echo "make soak            churn soak: faults, reloads and slow clients under load (SOAK_S=600 seconds)"
	@echo "make fuzz            mutation fuzzing of a running node: crashes, hangs, refused requests forwarded (FUZZ_S=600 seconds)"
	@echo "make bench-deps      install nginx, HAProxy, wrk, h2load and strace from Debian's packages"
	@echo "make sim-netns       the simulation with real latency in network namespaces (root)"
	@echo "make sim-clean       remove anything a crashed network-mode simulation left behind"
	@echo "make screenshot      render the admin status page to docs/status-page.png (Chromium)"

# Pingora builds zlib-ng from source: it needs cmake and a C compiler. Its TLS (OpenSSL)
# links Debian's libssl-dev, found with pkg-config (.cargo/config.toml: OPENSSL_NO_VENDOR).
# etcd-client compiles etcd's protobuf definitions with protoc; the store, its tests and the
# demo run etcd.
deps:
	@missing=""; \
	command -v cmake >/dev/null 2>&1 || missing="$$missing cmake"; \
	command -v pkg-config >/dev/null 2>&1 || missing="$$missing pkg-config"; \
	dpkg -s libssl-dev >/dev/null 2>&1 || pkg-config --exists openssl 2>/dev/null || missing="$$missing libssl-dev"; \
	command -v protoc >/dev/null 2>&1 || missing="$$missing protobuf-compiler"; \
	command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || missing="$$missing etcd-server"; \
	command -v cc >/dev/null 2>&1 || missing="$$missing gcc"; \
	command -v c++ >/dev/null 2>&1 || missing="$$missing g++"; \
	command -v make >/dev/null 2>&1 || missing="$$missing make"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	    case "$$missing" in *etcd-server*) systemctl disable --now etcd >/dev/null 2>&1 || true;; esac; \
	  else \
	    echo "Portico's build and tests need:$$missing"; \
	    echo "install them with:  sudo apt-get install -y$$missing"; \
	    exit 1; \
	  fi; \
	fi
	@command -v $(CARGO) >/dev/null 2>&1 || { echo "cargo not found: install Rust from https://rustup.rs"; exit 1; }

build: deps
	$(CARGO) build --release -p portico -p portico-origin -p portico-sim -p portico-bench

# Single node with three demo origins (0, 120 and 20 ms; two priorities).
# The demo's binaries: the `demo` profile (no LTO, parallel codegen) and only what the demo
# runs, so a first `make run` builds in minutes; `build` keeps the benchmarked release profile.
build-demo: deps
	$(CARGO) build --profile demo -p portico -p portico-origin -p portico-sim

run-single: build-demo
	@BIN_DIR=$(TARGET_DIR)/demo deploy/local/run.sh

# The main demo: three regions, an edge node and origins in each, anycast-style entries.
run: build-demo
	$(TARGET_DIR)/demo/portico-sim --topology deploy/sim/topology.json $(ARGS)

sim-netns: build-demo
	$(TARGET_DIR)/demo/portico-sim --topology deploy/sim/topology.json --netns

sim-clean:
	@if [ -x $(TARGET_DIR)/demo/portico-sim ]; then $(TARGET_DIR)/demo/portico-sim clean; \
	elif [ -x $(TARGET_DIR)/release/portico-sim ]; then $(TARGET_DIR)/release/portico-sim clean; \
	else $(CARGO) run --profile demo -q -p portico-sim -- clean; fi

# Real tools the tests drive: Prometheus (promtool and the server), BIRD 2 (config check and
# the anycast health check), Chromium (the status page), systemd-analyze (the unit file), curl,
# the openssl command (TLS session resumption tests),
# Pebble and pebble-challtestsrv (a real ACME server and its mock DNS, for managed certificates).
test-deps:
	@missing=""; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v bird >/dev/null 2>&1 || [ -x /usr/sbin/bird ] || missing="$$missing bird2"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	command -v curl >/dev/null 2>&1 || missing="$$missing curl"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	command -v pebble >/dev/null 2>&1 && command -v pebble-challtestsrv >/dev/null 2>&1 || missing="$$missing pebble"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	    for s in prometheus bird prometheus-node-exporter; do systemctl disable --now $$s >/dev/null 2>&1 || true; done; \
	  else \
	    echo "Portico's tests need:$$missing"; \
	    echo "install them with:  sudo apt-get install -y$$missing"; \
	    exit 1; \
	  fi; \
	fi

test: deps test-deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@# The simulation's child-process and network-mode tests run the portico and
	@# portico-origin binaries; cargo builds a package's binaries only for its own tests.
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace
	@$(MAKE) --no-print-directory test-soak
	@$(MAKE) --no-print-directory test-fuzz

fmt:
	$(CARGO) fmt --all

# Peers for the benchmarks, from Debian's packages (strace counts system calls per request
# when perf cannot).
# Debian's nginx and haproxy packages start their service on install; the benchmarks start
# their own copies, so the ones the install started are stopped again, and nothing else: a
# user's own nginx or HAProxy keeps running. With systemd, the unit of a package installed
# here is stopped and disabled (`systemctl disable --now`), and only for a package that was
# missing, so never a unit the user had. Without systemd (containers; the package's init
# script starts the daemon), the nginx and haproxy processes running before the install are
# recorded and only new ones are sent SIGTERM.
bench-deps:
	@missing=""; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$$missing nginx-light"; \
	command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing="$$missing haproxy"; \
	command -v wrk >/dev/null 2>&1 || missing="$$missing wrk"; \
	command -v h2load >/dev/null 2>&1 || missing="$$missing nghttp2-client"; \
	command -v taskset >/dev/null 2>&1 || missing="$$missing util-linux"; \
	command -v strace >/dev/null 2>&1 || missing="$$missing strace"; \
	if [ -z "$$missing" ]; then echo "benchmark peers installed: nginx, haproxy, wrk, h2load, taskset, strace"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing:$$missing"; \
	  before=" $$(pgrep -x 'nginx|haproxy' | tr '\n' ' ')"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  units=""; \
	  case "$$missing" in *nginx-light*) units="$$units nginx";; esac; \
	  case "$$missing" in *haproxy*) units="$$units haproxy";; esac; \
	  if [ -n "$$units" ] && [ -d /run/systemd/system ]; then \
	    echo "stopping what the install started:$$units (systemctl disable --now)"; \
	    systemctl disable --now $$units >/dev/null 2>&1 || true; \
	  elif [ -n "$$units" ]; then \
	    for pid in $$(pgrep -x 'nginx|haproxy'); do \
	      case "$$before" in *" $$pid "*) ;; *) echo "stopping $$(cat /proc/$$pid/comm 2>/dev/null) $$pid, started by the install"; kill $$pid 2>/dev/null || true;; esac; \
	    done; \
	  fi; \
	else echo "install the benchmark peers with:  sudo apt-get install -y$$missing"; exit 1; fi

# Plain HTTP (about 8 minutes, ARGS go to it), then the TLS cases below (about 4 minutes), then
# the rules case (about 2 minutes).
bench: build
	$(CARGO) run --release -q -p portico-bench --bin bench-throughput -- $(ARGS)
	$(CARGO) run --release -q -p portico-bench --bin bench-tls
	$(CARGO) run --release -q -p portico-bench --bin bench-rules

# Rule sets (about 2 minutes; part of `make bench`): Portico with 10 rules against Portico with
# none, nginx and HAProxy with the same rules; rate-limit accuracy at 3x the limit.
.PHONY: bench-rules
bench-rules: build
	$(CARGO) run --release -q -p portico-bench --bin bench-rules -- $(ARGS)

# TLS termination alone (about 4 minutes; part of `make bench`): full handshakes per core,
# HTTP/1.1 keep-alive over TLS (wrk), HTTP/2 keep-alive (h2load).
.PHONY: bench-tls
bench-tls: build
	$(CARGO) run --release -q -p portico-bench --bin bench-tls -- $(ARGS)

bench-micro: deps
	$(CARGO) bench -p portico-core
	$(CARGO) bench -p portico --bench compression

bench-failover: build
	$(CARGO) run --release -q -p portico-bench --bin bench-failover -- $(ARGS)
	$(TARGET_DIR)/release/portico-sim bench-edge-loss --topology deploy/sim/topology.json

bench-config: build
	$(CARGO) run --release -q -p portico-bench --bin bench-config -- $(ARGS)

# The three-region fleet (etcd with three members, four nodes) under 500 req/s while a good
# and a valid-but-wrong document are pushed (waves, gates, rollback), and the wrong one written
# to every node at once as before rollouts: a table with issue 21's targets, the anchors, and
# target/bench-rollout/{results.md,results.json,rollout.svg} (about 2 minutes).
bench-rollout: build
	$(CARGO) run --release -q -p portico-bench --bin bench-rollout -- $(ARGS)

# One node at 10 to 5,000 origins (probes every 5 s and 1 s, plain and TLS) and 1 to 10,000
# routes, beside HAProxy (same servers and checks) and nginx (memory, reloads): a table with
# issue 19's targets, PASS/FAIL, and target/bench-scale/results.json (about 6 minutes).
bench-scale: build bench-deps
	$(CARGO) run --release -q -p portico-bench --bin bench-scale -- $(ARGS)

# The same attacks against Portico, nginx and HAProxy (a few minutes): a table and every config.
.PHONY: bench-hostile
bench-hostile: build bench-deps
	$(CARGO) run --release -q -p portico-bench --bin bench-hostile -- $(ARGS)

# The churn soak: 500 req/s of GETs and POSTs while origins are killed, hung and 503'd, the
# config is reloaded and slow clients hang on; fails on a lost GET, a POST error no origin
# failure explains, or RSS/fd growth. SOAK_S seconds (default 600).
SOAK_S ?= 600
.PHONY: soak test-soak
soak: build
	$(TARGET_DIR)/release/soak --seconds $(SOAK_S) $(ARGS)

# `make test`'s 60 s soak, on the debug binaries the test target builds anyway.
test-soak: deps
	$(CARGO) build -q -p portico -p portico-bench --bin portico --bin soak
	PORTICO_BIN_DIR=$(TARGET_DIR)/debug $(TARGET_DIR)/debug/soak --seconds 60 --out $(TARGET_DIR)/soak-test

# Black-box mutation fuzzing of a running node for FUZZ_S seconds (default 600): mutated heads
# and bodies (byte flips, duplicate headers, CL/TE shapes, long lines, bad chunking,
# pipelining); fails on a crash, a panic, a hang or a forwarded request the head rules refuse.
# Debug binaries: overflow checks and debug assertions stay on while fuzzing.
FUZZ_S ?= 600
.PHONY: fuzz test-fuzz
fuzz: deps
	$(CARGO) build -q -p portico -p portico-bench --bin portico --bin fuzz
	$(TARGET_DIR)/debug/fuzz --seconds $(FUZZ_S) $(ARGS)

# `make test`'s 20 s fuzz.
test-fuzz:
	@$(MAKE) --no-print-directory fuzz FUZZ_S=20

# The admin status page rendered by headless Chromium, for docs/operations.md.
screenshot: build test-deps
	@deploy/screenshot.sh

clean:
	$(CARGO) clean
