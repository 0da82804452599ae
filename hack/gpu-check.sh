#!/usr/bin/env bash
# gpu-check.sh: gpuslice's hardware check. On a machine with an NVIDIA GPU and
# driver, build the device plugin and run its discovery against the real NVML
# (gpuslice-device-plugin --check): it prints the inventory JSON the plugin
# would publish on the node (gpuslice.io/inventory), a topology matrix
# (NVLink counts / PCIe levels, NUMA node, PCI bus id) and each GPU's health
# (probe result, whether Xid events can be watched). Then it cross-checks the
# GPU count and UUIDs against nvidia-smi.
#
# The unit and e2e tests never need a GPU; this script is the only check that
# does.
#
# Usage: hack/gpu-check.sh [--slice-mib N] [--mps] [--mps-v3] [--vgpu] [--vgpu-create]
#   --mps (or GPUSLICE_CHECK_MPS=1) also runs the MPS section
#   (hack/gpu-check-mps.sh; root, Volta or newer).
#   --mps-v3 (or GPUSLICE_CHECK_MPS=v3) runs it with --v3: the legacy MPS
#   checks, then MPS v3 (namespaces; skipped with a SKIP line below driver
#   615 / CUDA 13.4).
#   --vgpu (or GPUSLICE_CHECK_VGPU=1) also runs the vGPU section
#   (hack/gpu-check-vgpu.sh): lists vfio-mdev types and mdevs, SR-IOV VFs and
#   their vGPU types, and vfio-pci GPUs; read-only.
#   --vgpu-create (or GPUSLICE_CHECK_VGPU=create) runs it with --create:
#   creates and removes one mdev, or sets and clears one VF's vGPU type (root).
# Exit status: 0 all sections passed, 1 a check failed, 2 no GPU/driver.
#
# Sections are functions run in order by main(); a later issue appends its
# own section function and adds it to main().
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${GPUSLICE_CHECK_OUT:-$(mktemp -d)}
SLICE_MIB=1024
RUN_MPS=${GPUSLICE_CHECK_MPS:-0}
RUN_VGPU=${GPUSLICE_CHECK_VGPU:-0}
FAILED=0

while [ $# -gt 0 ]; do
	case "$1" in
	--slice-mib) SLICE_MIB=$2; shift 2 ;;
	--mps) [ "$RUN_MPS" = v3 ] || RUN_MPS=1; shift ;;
	--mps-v3) RUN_MPS=v3; shift ;;
	--vgpu) [ "$RUN_VGPU" = create ] || RUN_VGPU=1; shift ;;
	--vgpu-create) RUN_VGPU=create; shift ;;
	-h|--help) sed -n '2,27p' "$0"; exit 0 ;;
	*) echo "unknown argument $1" >&2; exit 2 ;;
	esac
done

say() { printf '\n=== %s\n' "$*"; }
fail() { echo "FAIL: $*"; FAILED=1; }

# run_section OK SKIP NAME SCRIPT [ARGS...]: runs a section's own script and
# says OK when it exits 0, "SKIP; skipped" when it exits 2 (what it needs is
# missing), and fails the NAME check otherwise.
run_section() {
	local ok=$1 skip=$2 name=$3 rc=0
	shift 3
	"$@" || rc=$?
	case $rc in
	0) echo "$ok" ;;
	2) echo "$skip; skipped" ;;
	*) fail "$name check failed (exit $rc)" ;;
	esac
}

# --- section: prerequisites -------------------------------------------------
prereq_check() {
	say "prerequisites"
	if ! command -v nvidia-smi >/dev/null 2>&1; then
		echo "nvidia-smi not found: no NVIDIA driver on this machine"
		exit 2
	fi
	if ! nvidia-smi -L >"$OUT/smi-list.txt" 2>&1; then
		cat "$OUT/smi-list.txt"
		echo "nvidia-smi cannot talk to the driver"
		exit 2
	fi
	cat "$OUT/smi-list.txt"
	nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1 | sed 's/^/driver: /'
	command -v go >/dev/null 2>&1 || { echo "go not found"; exit 2; }
}

# --- section: discovery, topology, health ----------------------------------
discovery_check() {
	say "build"
	(cd "$ROOT" && go build -o "$OUT/gpuslice-device-plugin" ./cmd/gpuslice-device-plugin)
	say "discovery (real NVML): inventory, topology, health"
	if ! "$OUT/gpuslice-device-plugin" --check --slice-mib "$SLICE_MIB" >"$OUT/check.txt" 2>"$OUT/check.err"; then
		cat "$OUT/check.err"
		fail "discovery failed"
		return
	fi
	cat "$OUT/check.txt"
	# The JSON report ends where the topology matrix starts.
	sed '/^TOPOLOGY/,$d' "$OUT/check.txt" >"$OUT/report.json"
	say "cross-check with nvidia-smi"
	local smi_uuids found_uuids
	smi_uuids=$(nvidia-smi --query-gpu=uuid --format=csv,noheader | sort)
	found_uuids=$(grep -o '"uuid": "[^"]*"' "$OUT/report.json" | cut -d'"' -f4 | sort)
	skipped=$(grep -c 'MIG enabled' "$OUT/report.json" || true)
	echo "nvidia-smi GPUs: $(echo "$smi_uuids" | grep -c . || true), discovered and served: $(echo "$found_uuids" | grep -c . || true), skipped (MIG): $skipped"
	for u in $found_uuids; do
		echo "$smi_uuids" | grep -qx "$u" || fail "discovered GPU $u is unknown to nvidia-smi"
	done
	if grep -q '"healthy": false' "$OUT/report.json"; then
		fail "a GPU is reported unhealthy (see the health map above)"
	fi
	if nvidia-smi topo -m >"$OUT/topo.txt" 2>/dev/null; then
		say "nvidia-smi topo -m (compare with the TOPOLOGY matrix above)"
		cat "$OUT/topo.txt"
	fi
	[ "$FAILED" = 0 ] && echo "discovery: OK"
}

# --- section: MPS (deviceplugin/mps, hack/gpu-check-mps.sh) -----------------
mps_check() {
	say "MPS"
	if [ ! -x "$ROOT/hack/gpu-check-mps.sh" ]; then
		echo "hack/gpu-check-mps.sh not present; skipped"
		return
	fi
	local args=()
	[ "$RUN_MPS" = v3 ] && args+=(--v3)
	run_section "MPS: OK" "MPS: prerequisites missing" MPS "$ROOT/hack/gpu-check-mps.sh" "${args[@]}"
}

# --- section: vGPU (deviceplugin/vgpu, hack/gpu-check-vgpu.sh) --------------
vgpu_check() {
	say "vGPU"
	local args=()
	[ "$RUN_VGPU" = create ] && args+=(--create)
	run_section "vGPU section: OK" "vGPU: no vGPU-capable or vfio-pci GPU (or not root for --vgpu-create)" vGPU \
		"$ROOT/hack/gpu-check-vgpu.sh" "${args[@]}"
}

main() {
	echo "output in $OUT"
	prereq_check
	discovery_check
	if [ "$RUN_MPS" = 1 ] || [ "$RUN_MPS" = v3 ]; then
		mps_check
	fi
	if [ "$RUN_VGPU" != 0 ]; then
		vgpu_check
	fi
	# Further sections are appended here.
	exit "$FAILED"
}

main
