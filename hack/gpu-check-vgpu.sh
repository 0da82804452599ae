#!/usr/bin/env bash
# gpu-check-vgpu.sh: the vGPU part of gpuslice's hardware check.
#
# Reads sysfs the way deviceplugin/vgpu does and lists, for every NVIDIA GPU
# (a physical function; its VFs are listed under it):
#   - its driver and IOMMU group (and whether /dev/vfio/<group> exists when it
#     is bound to vfio-pci: a passthrough candidate);
#   - vfio-mdev vGPU (pre-Ada): each mdev_supported_types/<type> with name,
#     available_instances, device_api, description and the framebuffer parsed
#     from it (framebuffer=<n>M|G);
#   - SR-IOV vGPU (Ada, Hopper, Blackwell): each VF (virtfnN) with its
#     nvidia/current_vgpu_type, and the creatable_vgpu_types of the first free
#     VF ("ID : name" lines);
#   - every mdev under bus/mdev/devices with its parent, type and IOMMU group.
# It checks what deviceplugin/vgpu relies on: UUID-named mdevs with
# mdev_type and iommu_group links, numeric available_instances and
# current_vgpu_type, and creatable_vgpu_types lines of the form "<ID> : <name>".
#
# With --create it also changes the node, once, and undoes it:
#   - mdev flavour: creates one mdev (a fresh UUID written to
#     <type>/create) of the first type with an available instance, checks
#     that bus/mdev/devices/<uuid> appears with an IOMMU group, that
#     /dev/vfio/<group> exists and that available_instances dropped by one,
#     then removes it (1 > <uuid>/remove) and checks it is gone;
#   - SR-IOV flavour: gives the first free VF the first type it offers
#     (current_vgpu_type), reads it back, then clears it (0) and checks.
# Without --create nothing is written. Passthrough rebinding is never done here.
#
# Usage: hack/gpu-check-vgpu.sh [--create] [--sysfs-root DIR] [--dev-root DIR]
#   --sysfs-root (default /sys) and --dev-root (default /dev) let it run
#   against a copy or a test tree.
# Run as root for --create. It can be run on its own or from hack/gpu-check.sh
# (--vgpu, --vgpu-create).
# Exit status: 0 all checks passed, 1 a check failed, 2 no vGPU-capable or
# passthrough GPU (nothing to check).
set -euo pipefail

SYS=/sys
DEV=/dev
CREATE=0
FAILED=0

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
	case "$1" in
	--create) CREATE=1; shift ;;
	--sysfs-root) SYS=$2; shift 2 ;;
	--dev-root) DEV=$2; shift 2 ;;
	-h|--help) usage; exit 0 ;;
	*) echo "unknown argument $1" >&2; exit 2 ;;
	esac
done

say() { printf '\n=== %s\n' "$*"; }
fail() { echo "FAIL: $*"; FAILED=1; }
attr() { local v; v=$(cat "$1" 2>/dev/null) || return 1; printf '%s' "${v//$'\n'/ }"; }
linkbase() { local t; t=$(readlink "$1" 2>/dev/null) || return 1; basename "$t"; }
isnum() { [[ $1 =~ ^[0-9]+$ ]]; }
uuid_re='^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'

# framebuffer_mib DESCRIPTION: the framebuffer= value in MiB, empty if none.
framebuffer_mib() {
	local fb
	fb=$(grep -oE 'framebuffer=[0-9]+[MG]' <<<"$1" | head -1 | cut -d= -f2) || true
	case "$fb" in
	*M) echo "${fb%M}" ;;
	*G) echo $(( ${fb%G} * 1024 )) ;;
	esac
}

new_uuid() {
	if [ -r /proc/sys/kernel/random/uuid ]; then
		cat /proc/sys/kernel/random/uuid
	else
		od -An -N16 -tx1 /dev/urandom | tr -d ' \n' |
			sed -E 's/^(.{8})(.{4}).(.{3}).(.{3})(.{12})$/\1-\2-4\3-a\4-\5/'
	fi
}

GPUS=()
MDEV_GPUS=()
SRIOV_VFS=()
PT_GPUS=()

list_gpus() {
	say "NVIDIA GPUs (sysfs root $SYS)"
	local d bdf vendor class drv group
	for d in "$SYS"/bus/pci/devices/*; do
		[ -e "$d" ] || continue
		bdf=$(basename "$d")
		vendor=$(attr "$d/vendor") || continue
		class=$(attr "$d/class") || continue
		if [ "$vendor" != 0x10de ] || [[ $class != 0x03* ]]; then
			continue
		fi
		[ -e "$d/physfn" ] && continue
		GPUS+=("$bdf")
		drv=$(linkbase "$d/driver") || drv="(none)"
		group=$(linkbase "$d/iommu_group") || group="(none: IOMMU off?)"
		echo "GPU $bdf device $(attr "$d/device") driver $drv iommu_group $group numa_node $(attr "$d/numa_node" || echo ?)"
		if [ -d "$d/mdev_supported_types" ]; then
			MDEV_GPUS+=("$bdf")
			list_mdev_types "$d"
		fi
		if compgen -G "$d/virtfn*" >/dev/null; then
			list_vfs "$d"
		fi
		if [ "$drv" = vfio-pci ]; then
			PT_GPUS+=("$bdf")
			if [ -e "$DEV/vfio/$group" ]; then
				echo "  passthrough: on vfio-pci, $DEV/vfio/$group present; group members: $(group_members "$group")"
			else
				fail "$bdf is on vfio-pci but $DEV/vfio/$group is missing"
			fi
		fi
	done
	[ ${#GPUS[@]} -gt 0 ] || echo "no NVIDIA GPU in $SYS/bus/pci/devices"
}

group_members() {
	local m out=""
	for m in "$SYS/kernel/iommu_groups/$1/devices"/*; do
		[ -e "$m" ] || [ -L "$m" ] || continue
		out+="$(basename "$m") "
	done
	printf '%s' "$out"
}

list_mdev_types() {
	local d=$1 t name avail api desc fb
	echo "  vfio-mdev types:"
	for t in "$d"/mdev_supported_types/*; do
		[ -d "$t" ] || continue
		name=$(attr "$t/name") || { fail "$t/name unreadable"; continue; }
		avail=$(attr "$t/available_instances") || avail=""
		api=$(attr "$t/device_api") || api=""
		desc=$(attr "$t/description") || desc=""
		isnum "$avail" || fail "$t/available_instances is not a number: '$avail'"
		fb=$(framebuffer_mib "$desc")
		[ -n "$fb" ] || fb="? (no framebuffer= in description)"
		printf '    %-14s %-22s available %-3s api %-9s framebuffer_mib %s\n' "$(basename "$t")" "$name" "$avail" "$api" "$fb"
		printf '      description: %s\n' "$desc"
	done
}

list_vfs() {
	local d=$1 l vf cur group shown=0
	echo "  SR-IOV VFs (sriov_numvfs $(attr "$d/sriov_numvfs" || echo ?)):"
	for l in "$d"/virtfn*; do
		vf=$(linkbase "$l") || continue
		group=$(linkbase "$SYS/bus/pci/devices/$vf/iommu_group") || group="(none)"
		if [ ! -e "$SYS/bus/pci/devices/$vf/nvidia/current_vgpu_type" ]; then
			echo "    $(basename "$l") $vf iommu_group $group: no nvidia/current_vgpu_type (not a vGPU VF)"
			continue
		fi
		cur=$(attr "$SYS/bus/pci/devices/$vf/nvidia/current_vgpu_type") || cur=""
		isnum "$cur" || fail "$vf/nvidia/current_vgpu_type is not a number: '$cur'"
		echo "    $(basename "$l") $vf iommu_group $group current_vgpu_type $cur"
		SRIOV_VFS+=("$vf")
		if [ "$cur" = 0 ] && [ $shown = 0 ]; then
			shown=1
			echo "    creatable_vgpu_types of $vf:"
			check_creatable "$SYS/bus/pci/devices/$vf/nvidia/creatable_vgpu_types" | sed 's/^/      /'
		fi
	done
}

# check_creatable FILE: prints the file and checks its lines.
check_creatable() {
	local line n=0
	while IFS= read -r line; do
		n=$((n + 1))
		echo "$line"
		[[ -z ${line// /} ]] && continue
		[ $n = 1 ] && [[ $line =~ ^[[:space:]]*ID[[:space:]]*: ]] && continue
		[[ $line =~ ^[[:space:]]*[0-9]+[[:space:]]*:[[:space:]]*[^[:space:]] ]] ||
			fail "creatable_vgpu_types line $n is not '<ID> : <name>': $line"
	done <"$1"
}

list_mdevs() {
	say "mdevs ($SYS/bus/mdev/devices)"
	local m u parent typ group any=0
	for m in "$SYS"/bus/mdev/devices/*; do
		[ -e "$m" ] || continue
		any=1
		u=$(basename "$m")
		[[ $u =~ $uuid_re ]] || fail "mdev $u is not named by a lower-case UUID"
		parent=$(basename "$(dirname "$(readlink "$m")")")
		typ=$(linkbase "$m/mdev_type") || { fail "mdev $u has no mdev_type link"; typ="?"; }
		group=$(linkbase "$m/iommu_group") || { fail "mdev $u has no iommu_group link"; group="?"; }
		echo "mdev $u parent $parent type $typ ($(attr "$m/mdev_type/name" || echo ?)) iommu_group $group"
	done
	[ $any = 1 ] || echo "none"
}

cleanup_uuid=""
cleanup_vf=""
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	if [ -n "$cleanup_uuid" ] && [ -e "$SYS/bus/mdev/devices/$cleanup_uuid/remove" ]; then
		echo 1 >"$SYS/bus/mdev/devices/$cleanup_uuid/remove" || true
	fi
	if [ -n "$cleanup_vf" ]; then
		echo 0 >"$SYS/bus/pci/devices/$cleanup_vf/nvidia/current_vgpu_type" || true
	fi
}
trap cleanup EXIT

create_mdev_check() {
	local bdf t avail u group after
	for bdf in "${MDEV_GPUS[@]}"; do
		for t in "$SYS/bus/pci/devices/$bdf"/mdev_supported_types/*; do
			avail=$(attr "$t/available_instances") || continue
			if ! isnum "$avail" || [ "$avail" -le 0 ]; then
				continue
			fi
			u=$(new_uuid)
			say "create mdev $u of $(basename "$t") ($(attr "$t/name")) on $bdf"
			if ! echo "$u" >"$t/create"; then
				fail "writing $u to $t/create failed"
				return
			fi
			cleanup_uuid=$u
			if [ ! -e "$SYS/bus/mdev/devices/$u" ]; then
				fail "$SYS/bus/mdev/devices/$u did not appear"
				return
			fi
			group=$(linkbase "$SYS/bus/mdev/devices/$u/iommu_group") || { fail "new mdev has no IOMMU group"; return; }
			[ -e "$DEV/vfio/$group" ] || fail "$DEV/vfio/$group missing for the new mdev"
			after=$(attr "$t/available_instances")
			[ "$after" = $((avail - 1)) ] || fail "available_instances $avail -> $after, want $((avail - 1))"
			echo "created: iommu_group $group, available_instances $avail -> $after"
			echo 1 >"$SYS/bus/mdev/devices/$u/remove" || { fail "remove failed"; return; }
			cleanup_uuid=""
			[ ! -e "$SYS/bus/mdev/devices/$u" ] || fail "mdev $u still present after remove"
			after=$(attr "$t/available_instances")
			[ "$after" = "$avail" ] || fail "available_instances after remove $after, want $avail"
			echo "removed: available_instances back to $after"
			return
		done
	done
	echo "no mdev type has an available instance; create check skipped"
}

create_vf_check() {
	local vf dir id name got
	for vf in "${SRIOV_VFS[@]}"; do
		dir="$SYS/bus/pci/devices/$vf/nvidia"
		[ "$(attr "$dir/current_vgpu_type")" = 0 ] || continue
		id=$(grep -E '^[[:space:]]*[0-9]+[[:space:]]*:' "$dir/creatable_vgpu_types" | head -1 | cut -d: -f1 | tr -d ' ') || true
		[ -n "$id" ] || continue
		name=$(grep -E "^[[:space:]]*${id}[[:space:]]*:" "$dir/creatable_vgpu_types" | head -1 | cut -d: -f2- | sed 's/^ *//')
		say "set vGPU type $id ($name) on VF $vf"
		if ! echo "$id" >"$dir/current_vgpu_type"; then
			fail "writing $id to $dir/current_vgpu_type failed"
			return
		fi
		cleanup_vf=$vf
		got=$(attr "$dir/current_vgpu_type")
		[ "$got" = "$id" ] || fail "current_vgpu_type reads $got after writing $id"
		echo 0 >"$dir/current_vgpu_type" || { fail "clearing the type failed"; return; }
		cleanup_vf=""
		got=$(attr "$dir/current_vgpu_type")
		[ "$got" = 0 ] || fail "current_vgpu_type reads $got after clearing"
		echo "set and cleared"
		return
	done
	echo "no free VF offers a type; create check skipped"
}

main() {
	list_gpus
	list_mdevs
	if [ ${#MDEV_GPUS[@]} = 0 ] && [ ${#SRIOV_VFS[@]} = 0 ] && [ ${#PT_GPUS[@]} = 0 ]; then
		echo "no vGPU-capable or vfio-pci GPU (no NVIDIA vGPU manager, SR-IOV VFs not enabled, none on vfio-pci)"
		[ "$FAILED" = 0 ] && exit 2
		exit 1
	fi
	if [ "$CREATE" = 1 ]; then
		if [ "$SYS" = /sys ] && [ "$(id -u)" != 0 ]; then
			echo "--create needs root"
			exit 2
		fi
		[ ${#MDEV_GPUS[@]} -gt 0 ] && create_mdev_check
		[ ${#SRIOV_VFS[@]} -gt 0 ] && create_vf_check
	fi
	[ "$FAILED" = 0 ] && echo "vGPU: OK"
	exit "$FAILED"
}

main
