#!/usr/bin/env bash
# Offline checks of what the images need, for machines without a container
# runtime (`make images-check`). It builds both binaries exactly as the
# Dockerfiles under build/ do and checks:
#   - the extender is static (CGO_ENABLED=0, no ELF dynamic section, no
#     program interpreter), so it runs on distroless/static;
#   - the extender runs as the image's nonroot user 65532:65532, with no
#     supplementary groups, and prints the version it was built with;
#   - the device plugin is a cgo binary that needs only glibc (libnvidia-ml
#     is dlopened at run time, never linked), so the Debian base suffices;
#   - every base image in build/*.Dockerfile is pinned by digest, and the
#     final stage labels org.opencontainers.image.version.
# Prints PASS/FAIL lines; exits 1 on any FAIL.
set -uo pipefail
cd "$(dirname "$0")/.."
VERSION=${VERSION:-check-$(date +%s)}
GO=${GO:-go}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
chmod 755 "$out"
fails=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
ldflags="-s -w -X github.com/gpuslice/gpuslice/internal/version.Version=${VERSION}"

echo "== extender (CGO_ENABLED=0, as build/extender.Dockerfile)"
if CGO_ENABLED=0 $GO build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$out/gpuslice-extender" ./cmd/gpuslice-extender; then
	pass "extender builds with CGO_ENABLED=0"
else
	fail "extender build"
fi
if [ -f "$out/gpuslice-extender" ]; then
	if readelf -d "$out/gpuslice-extender" 2>&1 | grep -q "There is no dynamic section"; then
		pass "extender has no dynamic section (static)"
	else
		fail "extender has a dynamic section: $(readelf -d "$out/gpuslice-extender" | grep NEEDED | tr -s ' ')"
	fi
	if readelf -l "$out/gpuslice-extender" | grep -q "INTERP"; then
		fail "extender has a program interpreter"
	else
		pass "extender has no program interpreter"
	fi
	chmod 755 "$out/gpuslice-extender"
	if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
		got=$(setpriv --reuid=65532 --regid=65532 --clear-groups -- sh -c 'echo "$(id -u):$(id -g):$(id -G)"; exec "$0" --version' "$out/gpuslice-extender" 2>&1)
		ids=$(echo "$got" | head -1)
		ver=$(echo "$got" | tail -1)
		[ "$ids" = "65532:65532:65532" ] && pass "runs as uid 65532, gid 65532, no other groups" || fail "identity $ids"
		[ "$ver" = "$VERSION" ] && pass "extender --version as 65532 prints $VERSION" || fail "extender --version printed '$ver', want $VERSION"
	else
		echo "SKIP nonroot run: needs root and setpriv"
		fails=$((fails + 1))
	fi
fi

echo "== device plugin (cgo, as build/device-plugin.Dockerfile)"
if CGO_ENABLED=1 CGO_CFLAGS="-O2 -g -Wno-deprecated-declarations" $GO build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$out/gpuslice-device-plugin" ./cmd/gpuslice-device-plugin; then
	pass "device plugin builds with cgo"
	needed=$(readelf -d "$out/gpuslice-device-plugin" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | sort -u | tr '\n' ' ')
	bad=$(for l in $needed; do case $l in libc.so.6 | libdl.so.2 | libpthread.so.0 | libm.so.6 | libresolv.so.2) ;; *) echo "$l" ;; esac; done)
	if [ -n "$needed" ] && [ -z "$bad" ]; then
		pass "device plugin needs only glibc: $needed"
	else
		fail "device plugin needs: ${needed:-nothing (not cgo?)}"
	fi
	v=$("$out/gpuslice-device-plugin" --version 2>&1)
	[ "$v" = "$VERSION" ] && pass "device plugin --version prints $VERSION" || fail "device plugin --version printed '$v'"
else
	fail "device plugin build"
fi

echo "== Dockerfiles"
for f in build/*.Dockerfile; do
	while read -r line; do
		img=${line#*=}
		case $img in *@sha256:[0-9a-f]*) [ ${#img} -gt 71 ] && pass "$f: $img pinned" || fail "$f: bad digest $img" ;; *) fail "$f: $img not pinned by digest" ;; esac
	done < <(grep -E '^ARG (GO|BASE)_IMAGE=' "$f")
	grep -q 'org.opencontainers.image.version="\${VERSION}"' "$f" && pass "$f: OCI version label" || fail "$f: no OCI version label"
	grep -qE '^FROM .*\$\{(GO|BASE)_IMAGE\}' "$f" || fail "$f: FROM does not use the pinned ARGs"
done
grep -q '^USER 65532:65532' build/extender.Dockerfile && pass "extender image runs as 65532:65532" || fail "extender image USER"

if [ "$fails" -gt 0 ]; then
	echo "$fails check(s) failed"
	exit 1
fi
echo "all image checks passed"
