# The two commands a new user needs:
#   make demo   set up everything, then restore a bundled image with the shipped model
#   make test   set up everything, then run the whole test suite
#
# Set-up is idempotent: the venv is made once (torch from PyPI provides LibTorch),
# cargo rebuilds only what changed.

SHELL := /bin/bash
TORCH_VERSION := 2.11.0
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.torch-$(TORCH_VERSION)
PROFILE ?= release
CARGO_FLAGS := $(if $(filter release,$(PROFILE)),--release,)
BIN := target/$(PROFILE)/vml-filter

# torch-sys finds LibTorch through the venv's python when these are set.
export LIBTORCH_USE_PYTORCH := 1
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)

.PHONY: setup build demo test test-rust clippy fmt clean-venv

setup: $(STAMP)

$(STAMP):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION) numpy
	touch $@

build: setup
	cargo build $(CARGO_FLAGS) --locked

demo: build
	$(BIN) --version
	$(BIN) demo

test: build
	cargo test $(CARGO_FLAGS) --locked -- --test-threads=2

clippy: setup
	cargo clippy $(CARGO_FLAGS) --all-targets --locked -- -D warnings

fmt:
	cargo fmt --all

clean-venv:
	rm -rf $(VENV)
