# Portico — the two commands: `make run` and `make test`.
# Both install what the build needs (cmake, a C compiler) with apt-get when run as root,
# or stop and print the exact command to run.

CARGO ?= cargo
SHELL := /bin/bash

.PHONY: help deps build run run-single test fmt lint bench bench-failover bench-deps clean

help:
	@echo "make run          build and start the demo (see README)"
	@echo "make test         format check, clippy -D warnings, every test"
	@echo "make bench        throughput against nginx and HAProxy"
	@echo "make bench-failover  failover benchmark against nginx, HAProxy and Front Door-style probing"
	@echo "make bench-deps   install nginx, HAProxy and wrk from Debian's packages"

# Pingora builds zlib-ng from source: it needs cmake and a C compiler.
deps:
	@missing=""; \
	command -v cmake >/dev/null 2>&1 || missing="$$missing cmake"; \
	command -v cc >/dev/null 2>&1 || missing="$$missing gcc"; \
	command -v c++ >/dev/null 2>&1 || missing="$$missing g++"; \
	command -v make >/dev/null 2>&1 || missing="$$missing make"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "Portico's build needs:$$missing"; \
	    echo "install them with:  sudo apt-get install -y$$missing"; \
	    exit 1; \
	  fi; \
	fi
	@command -v $(CARGO) >/dev/null 2>&1 || { echo "cargo not found: install Rust from https://rustup.rs"; exit 1; }

build: deps
	$(CARGO) build --release -p portico -p portico-origin

# Single node with three demo origins (0, 120 and 20 ms; two priorities).
run-single: build
	@deploy/local/run.sh

run: run-single

test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
