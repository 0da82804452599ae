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

.PHONY: all build test unit e2e lint demo control-plane bench bench-trace clean

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

## e2e: end-to-end tests on a real etcd + kube-apiserver + kube-scheduler.
e2e: build control-plane
	cd e2e && GPUSLICE_BIN=$(BIN) K8S_BIN=$(E2E_BIN) $(GO) test -count=1 -timeout 30m ./...

## test: everything CI runs (unit + e2e).
test: unit e2e

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd e2e && $(GO) vet ./...

## demo: the README's main job: a local control plane with simulated GPU
## nodes, the example pods, and the per-GPU inspect view.
demo: build control-plane
	cd e2e && $(GO) build -o bin/gpuslice-demo ./cmd/demo
	GPUSLICE_BIN=$(BIN) K8S_BIN=$(E2E_BIN) $(E2E_BIN)/gpuslice-demo

## bench: Go benchmarks of the extender's filter + prioritize.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./scheduler/extender/ ./allocator/

## bench-trace: replay a trace through the allocator (see README).
bench-trace:
	$(GO) run ./cmd/gpuslice-sim -trace $(TRACE) -seeds $(SEEDS)

clean:
	rm -rf $(BIN)
