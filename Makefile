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

.PHONY: setup build demo test lint test-rust clippy fmt clean-venv test-shims test-slurm install-gimp bench-plots

setup: $(STAMP)

$(STAMP):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION) numpy
	touch $@

build: setup
	cargo build $(CARGO_FLAGS) --locked

# The main job on the bundled photo (docs/demo/): make a ×4 low-resolution measurement,
# restore it with the shipped model (VML-MAP) and with bicubic, and score both against the
# original. Pictures land in demo-out/.
DEMO_IMG := docs/demo/dandelion.png
DEMO_OUT := demo-out
demo: build
	@mkdir -p $(DEMO_OUT)
	$(BIN) degrade --sr 4 -i $(DEMO_IMG) -o $(DEMO_OUT)/low.png
	$(BIN) --sr 4 --method classical -i $(DEMO_OUT)/low.png -o $(DEMO_OUT)/bicubic.png
	$(BIN) --sr 4 --progress bar -i $(DEMO_OUT)/low.png -o $(DEMO_OUT)/restored.png
	@echo "bicubic:  $$($(BIN) compare $(DEMO_OUT)/bicubic.png $(DEMO_IMG))"
	@echo "vml-map:  $$($(BIN) compare $(DEMO_OUT)/restored.png $(DEMO_IMG))"
	@echo "pictures: $(DEMO_OUT)/{low,bicubic,restored}.png"

# Formatting and lints first (CI fails on either), then the Rust tests, then the shims in the
# real programs (GIMP 3, ImageMagick 6 and 7; see test-shims), then `batch` on a real Slurm.
test: build lint
	cargo test $(CARGO_FLAGS) --locked -- --test-threads=2
	$(MAKE) --no-print-directory test-shims
	$(MAKE) --no-print-directory test-slurm

lint: setup
	cargo fmt --all -- --check
	cargo clippy $(CARGO_FLAGS) --all-targets --locked -- -D warnings

# The shims tested in the real programs (tests/shims/): ImageMagick 6 on this machine, GIMP 3 and
# ImageMagick 7 in a cached Debian trixie root. Needs root and Debian's package archive; the
# first run builds the root (~2 min), later runs reuse it. Each script prints "N passed, M failed".
# Without root they are skipped, and the last line says so.
test-shims: build
	@if [ "$$(id -u)" != 0 ]; then \
	  echo "SKIPPED (need root and Debian's package archive): tests/shims/im-test.sh tests/shims/gimp-test.sh"; \
	  exit 0; \
	fi; \
	rc=0; \
	bash tests/shims/im-test.sh || rc=1; \
	bash tests/shims/gimp-test.sh || rc=1; \
	exit $$rc

# `vml-filter batch --shard auto` as a 4-task Slurm job array on a one-node cluster that the
# script starts (Debian's slurmctld, slurmd and munge, installed when missing) and stops by PID:
# outputs exactly once, a rerun that does no work, a task cancelled by scancel and resubmitted.
# Needs root and Debian's package archive; without root it is skipped and says so.
test-slurm: build
	bash tests/slurm/slurm-test.sh

# Installs the GIMP 3 plug-in for the current user, pointed at this checkout's binary.
install-gimp: build
	bash plugin/install.sh --filter $(CURDIR)/$(BIN)

# Quality–cost plots of a `vml-filter bench` run (docs/benchmarks.md):
#   make bench-plots RUN=/path/to/run PREFIX=docs/img/bench
bench-plots: setup
	$(VENV)/bin/pip install -q matplotlib
	$(VENV)/bin/python benches/plot_bench.py $(RUN) $(PREFIX)

clippy: setup
	cargo clippy $(CARGO_FLAGS) --all-targets --locked -- -D warnings

fmt:
	cargo fmt --all

clean-venv:
	rm -rf $(VENV)
