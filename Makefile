# gpuslice build, test and demo entry points. Every tool is pinned in go.mod
# (main module) or e2e/go.mod (the real control plane the e2e tests start).
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
E2E_BIN := $(CURDIR)/e2e/bin
K8S_VERSION := v1.37.2
# kube-apiserver, kube-scheduler and kubectl built from the module report a
# placeholder version unless the version package variables are set.
K8S_LDFLAGS := -s -w $(foreach p,k8s.io/component-base/version k8s.io/client-go/pkg/version,\
	-X $(p).gitVersion=$(K8S_VERSION) -X $(p).gitMajor=1 -X $(p).gitMinor=37 \
	-X $(p).gitTreeState=clean -X $(p).buildDate=2026-01-01T00:00:00Z \
	-X $(p).gitCommit=0000000000000000000000000000000000000000)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/gpuslice/gpuslice/internal/version.Version=$(VERSION)

# go-nvml's cgo code uses deprecated NVML declarations; silence the noise.
export CGO_CFLAGS ?= -O2 -g -Wno-deprecated-declarations

TRACE ?= ../shared/trace/openb_pod_list_default.csv
SEEDS ?= 42,43,44,45,46,47,48,49,50,51

.PHONY: all build test unit e2e lint demo control-plane kwok bench bench-trace bench-scale clean images images-check manifests manifests-check inspect

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

## unit: unit tests of the main module, with the race detector.
unit:
	$(GO) test -race -count=1 ./...

## control-plane: build etcd, kube-apiserver, kube-scheduler and kubectl once
## into e2e/bin (about 7 minutes cold on 2 cores, seconds when cached).
control-plane: $(E2E_BIN)/kube-apiserver $(E2E_BIN)/kube-scheduler $(E2E_BIN)/kubectl $(E2E_BIN)/etcd

$(E2E_BIN)/kube-apiserver $(E2E_BIN)/kube-scheduler $(E2E_BIN)/kubectl $(E2E_BIN)/etcd: e2e/go.mod e2e/go.sum
	cd e2e && $(GO) build -ldflags '$(K8S_LDFLAGS)' -o bin/ ./tools/etcd \
		k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
	@touch $(E2E_BIN)/kube-apiserver $(E2E_BIN)/kube-scheduler $(E2E_BIN)/kubectl $(E2E_BIN)/etcd

## kwok: kwok (sigs.k8s.io/kwok, pinned in hack/kwok/go.mod, its own module
## so that the e2e module's Kubernetes libraries do not move), the kubelet of
## the demo's simulated nodes, and its default stages, into e2e/bin. Only
## `make demo` needs it; no test does.
KWOK_SRC := hack/kwok/go.mod hack/kwok/go.sum hack/kwok/stages/main.go
kwok: $(E2E_BIN)/kwok $(E2E_BIN)/kwok-stages.yaml

$(E2E_BIN)/kwok: $(KWOK_SRC)
	cd hack/kwok && $(GO) build -ldflags '-s -w' -o $(E2E_BIN)/kwok sigs.k8s.io/kwok/cmd/kwok

$(E2E_BIN)/kwok-stages.yaml: $(KWOK_SRC)
	@mkdir -p $(E2E_BIN)
	cd hack/kwok && $(GO) run ./stages > $(E2E_BIN)/kwok-stages.yaml.tmp && mv $(E2E_BIN)/kwok-stages.yaml.tmp $(E2E_BIN)/kwok-stages.yaml

## e2e: end-to-end tests on a real etcd + kube-apiserver + kube-scheduler.
e2e: build control-plane
	cd e2e && GPUSLICE_BIN=$(BIN) K8S_BIN=$(E2E_BIN) $(GO) test -count=1 -timeout 30m ./...

## test: everything CI runs (unit + e2e).
test: unit e2e

## lint: gofmt, go vet, golangci-lint (staticcheck, revive, ...; .golangci.yml)
## and logcheck (structured, contextual klog calls). Both linters are pinned in
## hack/tools/go.mod and built once into bin/tools.
TOOLS := $(BIN)/tools
$(TOOLS)/golangci-lint $(TOOLS)/logcheck: hack/tools/go.mod hack/tools/go.sum
	cd hack/tools && $(GO) build -o $(TOOLS)/ github.com/golangci/golangci-lint/v2/cmd/golangci-lint sigs.k8s.io/logtools/logcheck
	@touch $(TOOLS)/golangci-lint $(TOOLS)/logcheck

lint: $(TOOLS)/golangci-lint $(TOOLS)/logcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd e2e && $(GO) vet ./...
	$(TOOLS)/golangci-lint run ./...
	cd e2e && $(TOOLS)/golangci-lint run --config ../.golangci.yml ./...
	$(TOOLS)/logcheck -config hack/logcheck.conf ./...

## demo: the README's main job: a local control plane with simulated GPU
## nodes, the example pods, and the per-GPU inspect view.
## Each build step prints a progress line first, so a cold build does not
## look hung.
demo:
	@echo "demo [1/5] building the gpuslice binaries into bin/ ..."
	@$(MAKE) --no-print-directory build
	@echo "demo [2/5] building etcd, kube-apiserver, kube-scheduler and kubectl into e2e/bin (first run: about 7-10 minutes on 2 cores, cached afterwards) ..."
	@$(MAKE) --no-print-directory control-plane
	@echo "demo [3/5] building kwok, the simulated nodes' kubelet, into e2e/bin (first run: a few minutes, cached afterwards) ..."
	@$(MAKE) --no-print-directory kwok
	@echo "demo [4/5] building the demo program ..."
	cd e2e && $(GO) build -o bin/gpuslice-demo ./cmd/demo
	@echo "demo [5/5] starting the control plane, kwok and the simulated GPU nodes ..."
	GPUSLICE_BIN=$(BIN) K8S_BIN=$(E2E_BIN) $(E2E_BIN)/gpuslice-demo

## inspect: the per-node, per-GPU view of the cluster $$KUBECONFIG points at
## (the demo's, while it runs, or a real one).
inspect:
	cd e2e && $(GO) run ./cmd/demo -inspect

## bench: Go benchmarks of the extender's filter + prioritize.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./scheduler/extender/ ./allocator/

## bench-scale: kube-scheduler alone vs. with the gpuslice extender on the
## real control plane with NODES simulated 8-GPU nodes and PODS pods per
## phase (A, B, A', A0; MEMORY_PODS>0 adds the memory phase). Not in CI: at
## 5,000 nodes it runs for about half an hour on 2 cores. See docs/scale.md.
NODES ?= 1000
PODS ?= 10000
MEMORY_PODS ?= 0
# POLICY: the extender's placement policy; empty, the one the chart ships.
POLICY ?=
bench-scale: build control-plane
	cd e2e && $(GO) build -o bin/bench-scale ./cmd/bench-scale
	GPUSLICE_BIN=$(BIN) K8S_BIN=$(E2E_BIN) $(E2E_BIN)/bench-scale -nodes $(NODES) -pods $(PODS) -memory-pods $(MEMORY_PODS) -policy '$(POLICY)'

## bench-trace: replay a trace through the allocator (see README).
bench-trace:
	@if [ ! -f "$(TRACE)" ]; then \
		echo "bench-trace: no trace at $(TRACE)."; \
		echo "  The trace is Alibaba's openb GPU-sharing trace (FGD paper, USENIX ATC 2023), published in"; \
		echo "  https://github.com/alibaba/clusterdata, folder cluster-trace-gpu-v2023 (the README's figures"; \
		echo "  use commit 7a6c496e4f4b6ce6150be8f881cb051bf2abff42). Put openb_node_list_gpu_node.csv and"; \
		echo "  openb_pod_list_*.csv in ../shared/trace/,"; \
		echo "  or point TRACE at a pod list: make bench-trace TRACE=/path/openb_pod_list_default.csv"; \
		exit 2; \
	fi
	$(GO) run ./cmd/gpuslice-sim -trace $(TRACE) -seeds $(SEEDS)

## images: the extender and device-plugin images (build/*.Dockerfile) with
## docker or podman, tagged $(IMAGE_REGISTRY)/<name>:$(VERSION).
IMAGE_REGISTRY ?= ghcr.io/gpuslice
CONTAINER_TOOL ?= $(shell command -v docker 2>/dev/null || command -v podman 2>/dev/null)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
images:
	@if [ -z "$(CONTAINER_TOOL)" ]; then \
		echo "images: neither docker nor podman is installed; no image was built."; \
		echo "  Install one (or set CONTAINER_TOOL), or run 'make images-check' for the offline checks."; \
		exit 2; \
	fi
	@if ! $(CONTAINER_TOOL) info >/dev/null 2>&1; then \
		echo "images: $(CONTAINER_TOOL) is installed but cannot reach its daemon/engine ($(CONTAINER_TOOL) info fails); no image was built."; \
		echo "  Start it, or run 'make images-check' for the offline checks."; \
		exit 2; \
	fi
	$(CONTAINER_TOOL) build -f build/extender.Dockerfile --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
		-t $(IMAGE_REGISTRY)/gpuslice-extender:$(VERSION) .
	$(CONTAINER_TOOL) build -f build/device-plugin.Dockerfile --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
		-t $(IMAGE_REGISTRY)/gpuslice-device-plugin:$(VERSION) .

## images-check: what can be checked of the images without a container
## runtime: a static extender that runs as 65532, a glibc-only device
## plugin, digest-pinned bases, OCI version labels.
images-check:
	VERSION=$(VERSION) GO=$(GO) ./hack/check-images-offline.sh

## manifests: regenerate what derives from the Helm chart: its copy of
## manifests/admission/, manifests/deploy/gpuslice.yaml (helm template) and
## manifests/kube-scheduler/kubeadm-scheduler-config.yaml.
manifests:
	cd e2e && $(GO) run ./cmd/render-chart -repo ..

## manifests-check: fail when those generated files are stale.
manifests-check:
	cd e2e && $(GO) run ./cmd/render-chart -repo .. -check

clean:
	rm -rf $(BIN)
