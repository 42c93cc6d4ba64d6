# The two commands a newcomer needs: `make demo` (a local cluster with the operator
# reconciling the example chat app) and `make test` (every check CI runs). See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin

.PHONY: help deps lint unit e2e test demo demo-down render-examples bench bench-scale

help:
	@echo "make demo       start a local cluster, a real node, the operator and the example chat app,"
	@echo "                and ask it a question (root; cold: builds everything, about 20 min on 2 cores)"
	@echo "make demo-down  stop it all"
	@echo "make test       lint, unit tests, the kwok end-to-end suite and the real-node suite (CI)"
	@echo "make prepare    build or reuse the Go binaries and the images, both at once (demo and test do)"
	@echo "make unit       unit tests only (no cluster)"
	@echo "make e2e        the end-to-end suite against a real control plane (kwok nodes)"
	@echo "make realnode-test  the real-node suite alone (root; builds images, runs real engines)"
	@echo "make images     build or reuse the images alone (e2e/images/build.sh all)"
	@echo "make bench      benchmarks: render throughput, the model gateway's cost, hostile inputs"
	@echo "make bench-scale  1,000 apps against the e2e cluster: requests, latency, memory (minutes)"

$(VENV)/.synced: pyproject.toml uv.lock
	"$$(tools/ensure-uv.sh)" sync --frozen
	touch $@

deps: $(VENV)/.synced
	tools/ensure-debian-packages.sh docker-registry

lint: deps
	$(PY)/ruff check .
	$(PY)/ruff format --check .
	$(PY)/mypy
	$(PY)/lint-imports

unit: deps
	$(PY)/pytest tests

e2e: deps cluster-build
	$(PY)/pytest e2e -m "e2e and not realnode" --durations=10

# Two pytest sessions: the real node taints the kwok nodes while it runs (e2e/realnode/README.md).
# `prepare` first: on a cold machine the Go builds run beside the image builds.
test: deps prepare lint unit e2e realnode-test

bench: deps
	$(PY)/python -m benchmarks.render_bench
	$(PY)/python -m benchmarks.gateway_bench
	$(PY)/python -m benchmarks.input_bench

# Not part of `make test`: it takes minutes and prints numbers (README, "Scale").
bench-scale: deps cluster-build
	$(PY)/python -m benchmarks.scale

demo: deps realnode-deps
	e2e/demo.sh up

# The cluster and node binaries (Go) beside the images (podman, a C++ compile), with progress lines.
prepare: deps realnode-deps
	e2e/prepare.sh

demo-down:
	e2e/demo.sh down

# cluster: the local e2e control plane (e2e/cluster/); after cluster-up, eval the output of: e2e/cluster/cluster.sh env
.PHONY: cluster-build cluster-up cluster-down cluster-status

cluster-build:
	e2e/cluster/build.sh

cluster-up:
	e2e/cluster/cluster.sh up

cluster-down:
	e2e/cluster/cluster.sh down

cluster-status:
	e2e/cluster/cluster.sh status
# end cluster

# realnode: a real node (kubelet, containerd) beside the kwok nodes (e2e/realnode/); needs root.
# realnode-up joins the running cluster (make cluster-up first); eval the output of: e2e/realnode/node.sh env
.PHONY: realnode-deps realnode-build realnode-up realnode-down realnode-status realnode-test images-deps images prepare

# One apt-get run for the node's packages and what the image builds need (IMAGE_PACKAGES).
realnode-deps:
	e2e/realnode/install-deps.sh $(IMAGE_PACKAGES)

realnode-build: realnode-deps
	e2e/realnode/build.sh

realnode-up: realnode-build
	e2e/realnode/node.sh up

realnode-down:
	e2e/realnode/node.sh down

realnode-status:
	e2e/realnode/node.sh status

realnode-test: deps cluster-build realnode-build images-deps
	$(PY)/pytest e2e -m realnode --durations=15

# What e2e/images/build.sh needs besides the node's packages (llama.cpp is compiled here;
# qemu-user runs it under older emulated CPUs in the real-node suite).
IMAGE_PACKAGES := debootstrap cmake g++ make python3-pip podman runc qemu-user
images-deps:
	tools/ensure-debian-packages.sh $(IMAGE_PACKAGES)

images: deps images-deps
	e2e/images/build.sh all
# end realnode
