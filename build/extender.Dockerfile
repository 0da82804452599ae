# syntax=docker/dockerfile:1
# The gpuslice scheduler extender: a static (CGO_ENABLED=0) binary on a
# distroless static base, run as the nonroot user 65532. Build from the
# repository root: `make images` (or docker build -f build/extender.Dockerfile .).
#
# Base images are pinned by digest. The digests below are ones published
# for these tags and pinned in public repositories; they were NOT verified
# from this machine (no registry access) and must be refreshed before a
# release, e.g. `docker buildx imagetools inspect golang:1.26-bookworm` or
# `crane digest gcr.io/distroless/static-debian12:nonroot`.
ARG GO_IMAGE=golang:1.26-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d
ARG BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639

FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/go/pkg/mod go mod download
COPY . .
# The same build as hack/check-images-offline.sh tests: static, no cgo.
RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/gpuslice/gpuslice/internal/version.Version=${VERSION}" \
      -o /out/gpuslice-extender ./cmd/gpuslice-extender

FROM ${BASE_IMAGE}
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="gpuslice-extender" \
      org.opencontainers.image.description="gpuslice scheduler extender: GPU-share aware filter, score and bind for kube-scheduler" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/gpuslice/gpuslice" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build /out/gpuslice-extender /usr/local/bin/gpuslice-extender
COPY LICENSE /licenses/LICENSE
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/gpuslice-extender"]
