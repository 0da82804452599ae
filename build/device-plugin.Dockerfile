# syntax=docker/dockerfile:1
# The gpuslice device plugin: built with cgo (github.com/NVIDIA/go-nvml
# dlopens libnvidia-ml.so.1 at run time; the library itself comes from the
# node's driver, injected by the NVIDIA container runtime or CDI). It runs on
# Debian's glibc (the builder's glibc, so the binary's symbol versions
# match) with util-linux's unshare (MPS daemons get their own /dev/shm). It
# runs as root: it serves sockets in kubelet's device-plugin directory.
#
# Base images are pinned by digest. The digests below are ones published
# for these tags and pinned in public repositories; they were NOT verified
# from this machine (no registry access) and must be refreshed before a
# release, e.g. `docker buildx imagetools inspect debian:bookworm-slim`.
ARG GO_IMAGE=golang:1.26-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d
ARG BASE_IMAGE=debian:bookworm-slim@sha256:7b140f374b289a7c2befc338f42ebe6441b7ea838a042bbd5acbfca6ec875818

# cgo: build on the target platform (no cross C toolchain needed).
FROM ${GO_IMAGE} AS build
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=1 CGO_CFLAGS="-O2 -g -Wno-deprecated-declarations" \
    go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/gpuslice/gpuslice/internal/version.Version=${VERSION}" \
      -o /out/gpuslice-device-plugin ./cmd/gpuslice-device-plugin

FROM ${BASE_IMAGE}
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="gpuslice-device-plugin" \
      org.opencontainers.image.description="gpuslice kubelet device plugin: gpu-mem, gpu-core and gpu-count shares, MPS isolation" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/gpuslice/gpuslice" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="debian:bookworm-slim"
# The NVIDIA runtime reads these for the plugin's own container.
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=utility,compute
COPY --from=build /out/gpuslice-device-plugin /usr/local/bin/gpuslice-device-plugin
COPY LICENSE /licenses/LICENSE
ENTRYPOINT ["/usr/local/bin/gpuslice-device-plugin"]
