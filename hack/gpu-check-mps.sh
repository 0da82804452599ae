#!/usr/bin/env bash
# gpu-check-mps.sh: the MPS part of gpuslice's hardware check.
#
# On a machine with an NVIDIA GPU (Volta or newer, MIG off, nothing running on
# it), start a real MPS control daemon the way the gpuslice device plugin does
# (deviceplugin/mps): EXCLUSIVE_PROCESS compute mode, a private
# CUDA_MPS_PIPE_DIRECTORY and CUDA_MPS_LOG_DIRECTORY, CUDA_VISIBLE_DEVICES=<uuid>,
# and the daemon defaults set through the control pipe
# (set_default_active_thread_percentage, set_default_device_pinned_mem_limit 0 ...).
# Then run small CUDA clients (PyTorch if python3+torch are present, else a
# tiny CUDA C program built with nvcc) and report:
#   1. each client with its own CUDA_MPS_PINNED_DEVICE_MEM_LIMIT is stopped at it;
#   2. a client that sets a larger value than the daemon default gets no more;
#   3. a client that drops the variable gets no more than the daemon default;
#   4. CUDA_MPS_ACTIVE_THREAD_PERCENTAGE: the SM count each client reports;
#   5. a client that bypasses MPS (wrong pipe directory) cannot open its own
#      context while the MPS server holds the GPU;
#   6. whether a client works with a private /dev/shm (is a shared /dev/shm
#      needed?) and with a read-only pipe directory (needs unshare, root);
#   7. whether a non-root user can change the daemon defaults through the pipe.
# With --v3 (or --v3-only) it then checks MPS v3 the way the device plugin runs
# it (deviceplugin/mps/v3.go): after the legacy daemon is stopped, it writes the
# plugin's TOML (schema_version "1.0", [servers.gpuslice] and two
# [servers.gpuslice.namespaces.<ns>] with the --limits-mib/--threads limits),
# starts `nvidia-cuda-mps-control -d -p 3 -a FILE` and reports:
#   v3-1. the daemon starts and each namespace's socket
#         $CUDA_MPS_PIPE_DIRECTORY/gpuslice/<ns>/control appears;
#   v3-2. `namespace list` and `namespace get` show the TOML's namespaces and
#         limits; `namespace list` of an unknown server fails;
#   v3-3. a client in each namespace (CUDA_MPS_PIPE_DIRECTORY=<that directory>)
#         is stopped at its namespace's limit, and reports fewer SMs;
#   v3-4. a client that raises CUDA_MPS_PINNED_DEVICE_MEM_LIMIT and
#         CUDA_MPS_ACTIVE_THREAD_PERCENTAGE in its environment gains nothing;
#   v3-5. in a mount namespace that, like the plugin's container, sees only its
#         namespace's directory (at another path): the client works there, and
#         pointing CUDA_MPS_PIPE_DIRECTORY at the other namespace's socket or at
#         the daemon's own pipe directory gains nothing (needs unshare);
#   v3-6. the run-time commands the plugin uses, spelled as NVIDIA's "MPS v3
#         Interface" gives them: `namespace create N --server=gpuslice` and
#         `namespace set N --server=gpuslice --pinned-memory-limit=<MiB>M
#         --active-thread-percentage=P --client-priority=0` make a third
#         namespace (list, get, its socket, a client stopped at its limit),
#         `namespace delete N --server=gpuslice` removes it again;
#   v3-7. `nvidia-cuda-mps-control -q` stops the daemon.
# The v3 part needs driver 615 or newer and CUDA 13.4 or newer (read from
# nvidia-smi); with an older one it prints a SKIP line and, with --v3, the
# exit status is that of the legacy checks (--v3-only: exit 2).
#
# Usage: hack/gpu-check-mps.sh [--gpu INDEX|UUID] [--ceiling-mib N]
#                              [--limits-mib A,B] [--threads A,B] [--force] [--keep]
#                              [--v3 | --v3-only [--no-client]]
#   --v3        the legacy checks 1..7, then the MPS v3 checks
#   --v3-only   the MPS v3 checks alone
#   --no-client with --v3-only: no CUDA client is looked for or built; the
#               control-plane checks run and the client checks print SKIP
# Run as root. It can be run on its own or from hack/gpu-check.sh (--mps,
# --mps-v3).
# Exit status: 0 every check as expected, 1 a check failed, 2 prerequisites
# missing (no GPU, not root, no CUDA client available...): nothing was run.
set -euo pipefail

GPU=0
CEILING_MIB=4096     # daemon default pinned memory limit (the per-client ceiling)
LIMITS_MIB=1024,2048 # CUDA_MPS_PINNED_DEVICE_MEM_LIMIT of the two clients
THREADS=25,50        # CUDA_MPS_ACTIVE_THREAD_PERCENTAGE of the two clients
FORCE=0
KEEP=0
STEP_MIB=64          # allocation step of the clients
CLIENT_TIMEOUT=180
RUN_LEGACY=1
RUN_V3=0
NO_CLIENT=0
V3_MIN_DRIVER=615 # MPS v3: driver r615 or newer
V3_MIN_CUDA=13.4  # and CUDA 13.4 or newer
V3_SERVER=gpuslice # the server name the device plugin uses (v3ServerName)

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
	case "$1" in
	--gpu) GPU=$2; shift 2 ;;
	--ceiling-mib) CEILING_MIB=$2; shift 2 ;;
	--limits-mib) LIMITS_MIB=$2; shift 2 ;;
	--threads) THREADS=$2; shift 2 ;;
	--force) FORCE=1; shift ;;
	--keep) KEEP=1; shift ;;
	--v3) RUN_V3=1; shift ;;
	--v3-only) RUN_V3=1; RUN_LEGACY=0; shift ;;
	--no-client) NO_CLIENT=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
	esac
done

if ((NO_CLIENT)) && ((RUN_LEGACY)); then echo "--no-client needs --v3-only" >&2; exit 2; fi
IFS=, read -r LIMIT_A LIMIT_B <<<"$LIMITS_MIB"
IFS=, read -r THREAD_A THREAD_B <<<"$THREADS"
for n in "$CEILING_MIB" "$LIMIT_A" "$LIMIT_B" "$THREAD_A" "$THREAD_B"; do
	[[ $n =~ ^[0-9]+$ ]] || { echo "not a number: $n" >&2; exit 2; }
done
# The clients stop allocating here, so a client that is not limited is seen
# as "not limited" without taking the whole GPU.
BOUND_MIB=$((CEILING_MIB * 2 + 1024))
# Nothing of the caller's MPS environment reaches the daemons or the clients.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^CUDA_MPS_' || true)

log() { printf '[gpu-check-mps] %s\n' "$*"; }
skip() { printf '[gpu-check-mps] SKIP: %s\n' "$*"; exit 2; }

declare -a RESULTS=()
FAILED=0
result() { # status name detail
	RESULTS+=("$(printf '%-5s %-44s %s' "$1" "$2" "$3")")
	[[ $1 == FAIL ]] && FAILED=1
	printf '[gpu-check-mps] %s %s: %s\n' "$1" "$2" "$3"
}

# ---- prerequisites -----------------------------------------------------------
command -v nvidia-smi >/dev/null || skip "nvidia-smi not found: no NVIDIA driver here"
command -v nvidia-cuda-mps-control >/dev/null || skip "nvidia-cuda-mps-control not found (driver utilities not installed)"
[[ $(id -u) -eq 0 ]] || skip "must run as root (compute mode changes need it)"
nvidia-smi -L >/dev/null 2>&1 || skip "nvidia-smi -L failed: no usable GPU"

query() { nvidia-smi -i "$GPU" --query-gpu="$1" --format=csv,noheader 2>/dev/null | head -n1 | sed 's/^ *//;s/ *$//'; }
UUID=$(query uuid) || true
[[ -n $UUID ]] || skip "GPU $GPU not found"
NAME=$(query name)
MEM_MIB=$(query memory.total | grep -o '^[0-9]*' || true)
[[ -n $MEM_MIB ]] || skip "cannot read the memory of GPU $GPU"
CC=$(query compute_cap || true)
MIG=$(query mig.mode.current || true)
ORIG_MODE=$(query compute_mode)
DRIVER=$(query driver_version)
# The CUDA version the driver supports, from nvidia-smi's banner.
CUDA_VER=$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9][0-9.]*\).*/\1/p' | head -n1 || true)
log "GPU $GPU: $NAME $UUID, ${MEM_MIB} MiB, compute capability ${CC:-unknown}, MIG ${MIG:-N/A}, compute mode $ORIG_MODE, driver $DRIVER, CUDA ${CUDA_VER:-unknown}"

if [[ $MIG == Enabled ]]; then skip "MIG is enabled on $UUID: gpuslice refuses MPS mode there"; fi
if [[ $CC =~ ^[0-9]+\.[0-9]+$ ]] && ((${CC%%.*} < 7)); then
	skip "compute capability $CC is pre-Volta: gpuslice refuses MPS mode there"
fi
if ((CEILING_MIB >= MEM_MIB)); then skip "--ceiling-mib $CEILING_MIB is not below the GPU's $MEM_MIB MiB"; fi
if ((LIMIT_A >= CEILING_MIB || LIMIT_B >= CEILING_MIB)); then skip "--limits-mib must be below --ceiling-mib"; fi
BUSY=$(nvidia-smi -i "$GPU" --query-compute-apps=pid --format=csv,noheader 2>/dev/null | grep -c . || true)
if ((BUSY > 0)) && ((FORCE == 0)); then
	skip "$BUSY compute process(es) on GPU $GPU; changing its compute mode would disturb them (--force to go on)"
fi

# version_ge A B: version A (x.y.z) is B or newer.
version_ge() {
	local IFS=. i
	local -a a b
	read -r -a a <<<"$1"
	read -r -a b <<<"$2"
	for i in 0 1 2; do
		if ((10#${a[i]:-0} != 10#${b[i]:-0})); then ((10#${a[i]:-0} > 10#${b[i]:-0})); return; fi
	done
}
# V3_SKIP: why the MPS v3 checks cannot run here, empty when they can.
V3_SKIP=""
if ((RUN_V3)); then
	if ! [[ $DRIVER =~ ^[0-9]+(\.[0-9]+)*$ ]] || ! version_ge "$DRIVER" "$V3_MIN_DRIVER"; then
		V3_SKIP="driver '$DRIVER' is older than $V3_MIN_DRIVER"
	elif ! [[ $CUDA_VER =~ ^[0-9]+(\.[0-9]+)*$ ]]; then
		V3_SKIP="cannot read the CUDA version from nvidia-smi"
	elif ! version_ge "$CUDA_VER" "$V3_MIN_CUDA"; then
		V3_SKIP="CUDA $CUDA_VER is older than $V3_MIN_CUDA"
	fi
	if [[ -n $V3_SKIP ]] && ((RUN_LEGACY == 0)); then skip "MPS v3: $V3_SKIP"; fi
fi

# ---- the CUDA client -----------------------------------------------------------
WORK=$(mktemp -d /tmp/gpuslice-mps-check.XXXXXX)
chmod 755 "$WORK"
CLIENT=()
if ((NO_CLIENT)); then
	log "client: none (--no-client): the client checks are skipped"
elif command -v python3 >/dev/null && python3 -c 'import torch' >/dev/null 2>&1; then
	log "client: python3 $(python3 -c 'import sys; print(sys.version.split()[0])') with torch $(python3 -c 'import torch; print(torch.__version__)')"
	cat >"$WORK/client.py" <<'EOF'
import sys, time, torch
mode, step, bound = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
props = torch.cuda.get_device_properties(0)
if mode == "hold":
    x = torch.empty(step << 20, dtype=torch.uint8, device="cuda")
    print("HOLDING", flush=True)
    time.sleep(bound)
    sys.exit(0)
bufs, total = [], 0
while total + step <= bound:
    try:
        bufs.append(torch.empty(step << 20, dtype=torch.uint8, device="cuda"))
    except RuntimeError:
        break
    total += step
print(f"RESULT allocated_mib={total} sms={props.multi_processor_count}", flush=True)
EOF
	CLIENT=(python3 "$WORK/client.py")
elif command -v nvcc >/dev/null; then
	log "client: CUDA C built with $(nvcc --version | tail -n1)"
	cat >"$WORK/client.cu" <<'EOF'
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>
#include <cuda_runtime.h>
int main(int argc, char** argv) {
    if (argc < 4) return 2;
    size_t step = (size_t)atoi(argv[2]) << 20; long bound = atol(argv[3]);
    int sms = 0;
    cudaError_t e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    if (e != cudaSuccess) { fprintf(stderr, "CUDA init failed: %s\n", cudaGetErrorString(e)); return 1; }
    if (!strcmp(argv[1], "hold")) {
        void* p; if (cudaMalloc(&p, step) != cudaSuccess) return 1;
        printf("HOLDING\n"); fflush(stdout); sleep((unsigned)bound); return 0;
    }
    long total = 0; void* p;
    while (total + atoi(argv[2]) <= bound && cudaMalloc(&p, step) == cudaSuccess) total += atoi(argv[2]);
    printf("RESULT allocated_mib=%ld sms=%d\n", total, sms);
    return 0;
}
EOF
	nvcc -o "$WORK/client" "$WORK/client.cu" >/dev/null || skip "nvcc failed to build the CUDA client"
	CLIENT=("$WORK/client")
else
	rm -rf "$WORK"
	skip "no CUDA client available: neither python3 with torch nor nvcc found"
fi
chmod -R a+rX "$WORK"

# ---- the daemon, as the device plugin starts it ---------------------------------
PIPE="$WORK/mps/$UUID/pipe"
LOGD="$WORK/mps/$UUID/log"
mkdir -p "$PIPE" "$LOGD"
chmod 755 "$WORK/mps" "$WORK/mps/$UUID" "$PIPE" "$LOGD"
HOLDER_PID=""
DAEMON_STARTED=0
# MPS v3: the daemon's pipe and log directories, as the plugin lays them out
# (<Root>/<id>/pipe, log, mps.toml), and its server's namespace directories.
V3_DIR="$WORK/mps3/$UUID"
PIPE3="$V3_DIR/pipe"
LOG3="$V3_DIR/log"
TOML3="$V3_DIR/mps.toml"
V3_STARTED=0

ctl() { # command...: one command on the control pipe
	echo "$*" | CUDA_MPS_PIPE_DIRECTORY=$PIPE CUDA_MPS_LOG_DIRECTORY=$LOGD CUDA_VISIBLE_DEVICES=$UUID \
		timeout 20 nvidia-cuda-mps-control
}

# ctl3 ARG...: the control program with the v3 daemon's environment, as the
# plugin runs it (`nvidia-cuda-mps-control namespace list --server=...`, `-q`).
ctl3() {
	CUDA_MPS_PIPE_DIRECTORY=$PIPE3 CUDA_MPS_LOG_DIRECTORY=$LOG3 CUDA_VISIBLE_DEVICES=$UUID \
		timeout 20 nvidia-cuda-mps-control "$@"
}

cleanup() {
	set +e
	stop_holder
	if ((DAEMON_STARTED)); then
		ctl quit >/dev/null 2>&1
		log "MPS daemon stopped"
	fi
	if ((V3_STARTED)); then
		ctl3 -q >/dev/null 2>&1
		log "MPS v3 daemon stopped"
	fi
	case "$ORIG_MODE" in
	Default) nvidia-smi -i "$GPU" -c DEFAULT >/dev/null ;;
	Exclusive_Process) nvidia-smi -i "$GPU" -c EXCLUSIVE_PROCESS >/dev/null ;;
	Prohibited) nvidia-smi -i "$GPU" -c PROHIBITED >/dev/null ;;
	*) log "unknown original compute mode '$ORIG_MODE': set it back by hand" ;;
	esac
	log "compute mode restored to $(query compute_mode)"
	if ((KEEP)); then log "logs kept in $LOGD and $LOG3"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

nvidia-smi -i "$GPU" -c EXCLUSIVE_PROCESS >/dev/null
log "compute mode: $(query compute_mode)"

legacy_start() {
	CUDA_MPS_PIPE_DIRECTORY=$PIPE CUDA_MPS_LOG_DIRECTORY=$LOGD CUDA_VISIBLE_DEVICES=$UUID nvidia-cuda-mps-control -d
	DAEMON_STARTED=1
	ctl set_default_active_thread_percentage 100
	ctl set_default_device_pinned_mem_limit 0 "${CEILING_MIB}M"
	log "daemon defaults: active thread percentage $(ctl get_default_active_thread_percentage), pinned memory limit of device 0: $(ctl get_default_device_pinned_mem_limit 0)"
}

# legacy_stop: quit the legacy daemon and wait (30 s at most) until its MPS
# server has left the GPU, so the v3 daemon can take it.
legacy_stop() {
	((DAEMON_STARTED)) || return 0
	ctl quit >/dev/null 2>&1 || true
	DAEMON_STARTED=0
	local busy
	for _ in $(seq 1 30); do
		busy=$(nvidia-smi -i "$GPU" --query-compute-apps=pid --format=csv,noheader 2>/dev/null | grep -c . || true)
		((busy == 0)) && break
		sleep 1
	done
	log "legacy MPS daemon stopped"
}

# The environment of every client: nothing of ours leaks in (env -i).
BASE_ENV=(PATH="$PATH" HOME=/tmp)
for v in LD_LIBRARY_PATH PYTHONPATH VIRTUAL_ENV CONDA_PREFIX; do
	if [[ -n ${!v:-} ]]; then BASE_ENV+=("$v=${!v}"); fi
done

# run_client NAME [VAR=VALUE...]: run the probe client as an MPS client (env -i:
# nothing else leaks in) and print allocated_mib and sms. Its
# CUDA_MPS_PIPE_DIRECTORY is the legacy daemon's; a CUDA_MPS_PIPE_DIRECTORY=DIR
# among the VAR=VALUE replaces it (env keeps the last value).
run_client() {
	local name=$1
	shift
	local out
	out=$(env -i "${BASE_ENV[@]}" CUDA_MPS_PIPE_DIRECTORY="$PIPE" "$@" \
		timeout "$CLIENT_TIMEOUT" "${CLIENT[@]}" probe "$STEP_MIB" "$BOUND_MIB" 2>"$WORK/$name.err") || true
	local line
	line=$(grep '^RESULT' <<<"$out" || true)
	if [[ -z $line ]]; then
		echo "error: $(tail -n 3 "$WORK/$name.err" | tr '\n' ' ')"
		return
	fi
	echo "${line#RESULT }"
}
field() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" <<<"$2"; }

# check_limit NAME LIMIT OUTPUT: stopped at LIMIT (allowing one step and
# context overhead below it) and never above it.
check_limit() {
	local name=$1 limit=$2 out=$3 got
	got=$(field allocated_mib "$out")
	if [[ -z $got ]]; then result FAIL "$name" "$out"; return; fi
	if ((got >= BOUND_MIB)); then
		result FAIL "$name" "allocated ${got} MiB, reached the test bound: not limited (limit ${limit} MiB)"
	elif ((got > limit)); then
		result FAIL "$name" "allocated ${got} MiB, above the limit of ${limit} MiB"
	elif ((got * 2 < limit)); then
		result WARN "$name" "allocated only ${got} MiB, well below the limit of ${limit} MiB (context overhead, or an error)"
	else
		result PASS "$name" "allocated ${got} MiB, stopped at the limit of ${limit} MiB"
	fi
}

# check_no_gain NAME LIMIT OUTPUT: a client that must not get more than LIMIT
# (its own namespace's) passes when it got no context at all or at most LIMIT.
check_no_gain() {
	local name=$1 limit=$2 out=$3 got
	got=$(field allocated_mib "$out")
	if [[ -z $got ]]; then
		result PASS "$name" "no MPS context: $out"
	elif ((got > limit)); then
		result FAIL "$name" "allocated ${got} MiB, more than its namespace's ${limit} MiB"
	else
		result PASS "$name" "allocated ${got} MiB, within its namespace's ${limit} MiB"
	fi
}

# mountns_client ERRFILE SCRIPT ARG0 [VAR=VALUE...]: the probe client (env -i,
# with VAR=VALUE) after SCRIPT (with $0 = ARG0) ran in a private mount
# namespace; its stderr goes to ERRFILE. Needs unshare (root).
mountns_client() {
	local err=$1 script=$2 arg0=$3
	shift 3
	unshare --mount --propagation private -- /bin/sh -c "$script" "$arg0" \
		env -i "${BASE_ENV[@]}" "$@" \
		timeout "$CLIENT_TIMEOUT" "${CLIENT[@]}" probe "$STEP_MIB" "$BOUND_MIB" 2>"$err" || true
}

# start_holder PIPE_DIR: a client that holds an MPS context (and so the MPS
# server on the GPU) in the background until stop_holder; fails if it did not
# come up within 60 s.
start_holder() {
	env -i "${BASE_ENV[@]}" CUDA_MPS_PIPE_DIRECTORY="$1" \
		"${CLIENT[@]}" hold "$STEP_MIB" 120 >"$WORK/holder.out" 2>&1 &
	HOLDER_PID=$!
	for _ in $(seq 1 60); do
		grep -q HOLDING "$WORK/holder.out" 2>/dev/null && break
		sleep 1
	done
	grep -q HOLDING "$WORK/holder.out"
}
stop_holder() {
	[[ -n $HOLDER_PID ]] || return 0
	kill "$HOLDER_PID" 2>/dev/null || true
	wait "$HOLDER_PID" 2>/dev/null || true
	HOLDER_PID=""
}

# ---- the legacy checks 1..7 ------------------------------------------------------------
legacy_checks() {
legacy_start

# ---- 1..4: memory and thread limits -----------------------------------------------
OUT_A=$(run_client a CUDA_MPS_PINNED_DEVICE_MEM_LIMIT="0=${LIMIT_A}M" CUDA_MPS_ACTIVE_THREAD_PERCENTAGE="$THREAD_A")
check_limit "client A limit 0=${LIMIT_A}M" "$LIMIT_A" "$OUT_A"
OUT_B=$(run_client b CUDA_MPS_PINNED_DEVICE_MEM_LIMIT="0=${LIMIT_B}M" CUDA_MPS_ACTIVE_THREAD_PERCENTAGE="$THREAD_B")
check_limit "client B limit 0=${LIMIT_B}M" "$LIMIT_B" "$OUT_B"
RAISE=$((CEILING_MIB * 2))
OUT_C=$(run_client c CUDA_MPS_PINNED_DEVICE_MEM_LIMIT="0=${RAISE}M")
check_limit "client raising its limit to ${RAISE}M" "$CEILING_MIB" "$OUT_C"
OUT_D=$(run_client d)
check_limit "client dropping its limit" "$CEILING_MIB" "$OUT_D"
OUT_E=$(run_client e CUDA_MPS_PINNED_DEVICE_MEM_LIMIT="${UUID}=${LIMIT_A}M")
check_limit "client limit by UUID ${UUID:0:12}...=${LIMIT_A}M" "$LIMIT_A" "$OUT_E"

SM_FULL=$(field sms "$OUT_D")
SM_A=$(field sms "$OUT_A")
SM_B=$(field sms "$OUT_B")
SM_C=$(field sms "$(run_client f CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=100)")
if [[ -n $SM_FULL && -n $SM_A && -n $SM_B ]]; then
	st=INFO
	if ((SM_A < SM_FULL && SM_B < SM_FULL && SM_A <= SM_B)); then st=PASS; fi
	result "$st" "thread percentage ${THREAD_A}%/${THREAD_B}%/none" "SMs reported ${SM_A}/${SM_B}/${SM_FULL} (100% asked: ${SM_C:-?})"
else
	result INFO "thread percentage" "SM count not reported"
fi

# ---- 5: a client that bypasses MPS ----------------------------------------------------
if start_holder "$PIPE"; then
	mkdir -p "$WORK/nopipe"
	OUT_BYPASS=$(env -i "${BASE_ENV[@]}" \
		CUDA_MPS_PIPE_DIRECTORY="$WORK/nopipe" timeout "$CLIENT_TIMEOUT" "${CLIENT[@]}" probe "$STEP_MIB" "$BOUND_MIB" 2>"$WORK/bypass.err" || true)
	if grep -q '^RESULT' <<<"$OUT_BYPASS"; then
		result FAIL "client bypassing MPS" "got its own context: ${OUT_BYPASS#RESULT }"
	else
		result PASS "client bypassing MPS" "refused: $(tail -n 1 "$WORK/bypass.err")"
	fi

	# ---- 6: private /dev/shm, read-only pipe directory ----------------------------------
	if command -v unshare >/dev/null; then
		local lim_env=(CUDA_MPS_PIPE_DIRECTORY="$PIPE" CUDA_MPS_PINNED_DEVICE_MEM_LIMIT="0=${LIMIT_A}M")
		# shellcheck disable=SC2016 # $@ and $0 expand in the inner shell.
		OUT_SHM=$(mountns_client "$WORK/shm.err" 'mount -t tmpfs -o size=64m tmpfs /dev/shm && exec "$@"' sh "${lim_env[@]}")
		if grep -q '^RESULT' <<<"$OUT_SHM"; then
			result INFO "client with a private /dev/shm" "works: MPS does not need a shared /dev/shm here (${OUT_SHM#RESULT })"
		else
			result INFO "client with a private /dev/shm" "fails: MPS needs the shared /dev/shm ($(tail -n 1 "$WORK/shm.err"))"
		fi
		# shellcheck disable=SC2016
		OUT_RO=$(mountns_client "$WORK/ro.err" 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"' "$PIPE" "${lim_env[@]}")
		if grep -q '^RESULT' <<<"$OUT_RO"; then
			result INFO "client with a read-only pipe directory" "works (${OUT_RO#RESULT }): ReadOnlyPipeMount can be on"
		else
			result INFO "client with a read-only pipe directory" "fails ($(tail -n 1 "$WORK/ro.err")): keep ReadOnlyPipeMount off"
		fi
	else
		result INFO "private /dev/shm, read-only pipe dir" "not checked: unshare not found"
	fi
	stop_holder
else
	result FAIL "holding MPS client" "did not start: $(tail -n 2 "$WORK/holder.out" | tr '\n' ' ')"
fi

# ---- 7: a non-root user on the control pipe --------------------------------------------
RUNAS=()
if command -v setpriv >/dev/null; then
	RUNAS=(setpriv --reuid=65534 --regid=65534 --clear-groups)
elif command -v runuser >/dev/null; then
	RUNAS=(runuser -u nobody --)
fi
if ((${#RUNAS[@]} > 0)) && ! "${RUNAS[@]}" test -x "$(command -v nvidia-cuda-mps-control)"; then
	result INFO "non-root user on the control pipe" "not checked: nobody cannot run nvidia-cuda-mps-control"
elif ((${#RUNAS[@]} > 0)); then
	OUT_NR=$(echo "set_default_active_thread_percentage 99" | "${RUNAS[@]}" env CUDA_MPS_PIPE_DIRECTORY="$PIPE" \
		timeout 20 nvidia-cuda-mps-control 2>&1 || true)
	NOW=$(ctl get_default_active_thread_percentage || true)
	if [[ $NOW == 99* ]]; then
		result FAIL "non-root user changing daemon defaults" "accepted (default now $NOW): the pipe directory must not be writable by tenants"
		ctl set_default_active_thread_percentage 100 >/dev/null || true
	else
		result PASS "non-root user changing daemon defaults" "refused or ignored (default still $NOW; answer: ${OUT_NR:-none})"
	fi
else
	result INFO "non-root user on the control pipe" "not checked: neither setpriv nor runuser found"
fi
legacy_stop
}

# ---- MPS v3 --------------------------------------------------------------------------------
# The namespaces, named as the plugin names them (gs_<pod UID's 32 hex
# digits>_<16 hex digits of the container name's SHA-256>; NVIDIA allows
# lowercase letters, digits and '_', at most 64): A and B come from the TOML
# file, C is created and deleted at run time.
NS_A=gs_0000000000000000000000000000000a_000000000000000a
NS_B=gs_0000000000000000000000000000000b_000000000000000b
NS_C=gs_0000000000000000000000000000000c_000000000000000c
LIMIT_C=$(((LIMIT_A + LIMIT_B) / 2))
THREAD_C=$THREAD_A

# v3_toml: the TOML file, in the form of the plugin's configTOML.
v3_toml() {
	cat <<-TOML
		# Written by hack/gpu-check-mps.sh as the gpuslice device plugin writes it; applied with nvidia-cuda-mps-control -d -p 3 -a.
		schema_version = "1.0"

		[servers.$V3_SERVER]
		allowed_devices = "$UUID"
		pinned_memory_limit = "${CEILING_MIB}M"
		active_thread_percentage = "100"
		client_priority = "0"

		[servers.$V3_SERVER.namespaces.$NS_A]
		pinned_memory_limit = "${LIMIT_A}M"
		active_thread_percentage = "$THREAD_A"
		client_priority = "0"

		[servers.$V3_SERVER.namespaces.$NS_B]
		pinned_memory_limit = "${LIMIT_B}M"
		active_thread_percentage = "$THREAD_B"
		client_priority = "0"
	TOML
}

# ns_dir NS: the socket directory of namespace NS (the plugin's NamespaceDir).
ns_dir() { echo "$PIPE3/$V3_SERVER/$1"; }

# ns_run NAME VERB [NS] [ARG...]: `namespace VERB [NS] --server=gpuslice
# ARG...` as the plugin runs it (list: --format=csv,noheader); its output is
# in $WORK/NAME.out, its status is the command's.
ns_run() {
	local name=$1 verb=$2 ns=${3:-}
	local args=(namespace "$verb")
	[[ -n $ns ]] && args+=("$ns")
	args+=("--server=$V3_SERVER")
	[[ $verb == list ]] && args+=("--format=csv,noheader")
	args+=("${@:4}")
	ctl3 "${args[@]}" >"$WORK/$name.out" 2>&1
}

# ns_field NAME NS FIELD: `namespace get NS gpuslice FIELD` (NVIDIA's
# spelling: one unformatted value), output in $WORK/NAME.out.
ns_field() {
	ctl3 namespace get "$2" "$V3_SERVER" "$3" >"$WORK/$1.out" 2>&1
}
# out_of NAME: the last output of ns_run NAME, on one line.
out_of() { tr '\n' ' ' <"$WORK/$1.out" | sed 's/ *$//'; }

# wait_socket NS [absent]: wait (20 s at most) until NS's control socket is
# there (or, with absent, gone).
wait_socket() {
	local sock
	sock="$(ns_dir "$1")/control"
	for _ in $(seq 1 40); do
		if [[ ${2:-} == absent ]]; then
			[[ -e $sock ]] || return 0
		elif [[ -e $sock ]]; then
			return 0
		fi
		sleep 0.5
	done
	return 1
}

# check_listed NAME NS yes|no: whether `namespace list` shows NS.
check_listed() {
	local name=$1 ns=$2 want=$3
	if ! ns_run list list; then
		result FAIL "$name" "namespace list failed: $(out_of list)"
	elif grep -qxF "$ns" <(cut -d, -f1 <"$WORK/list.out" | tr -d ' \t'); then
		if [[ $want == yes ]]; then result PASS "$name" "listed: $(out_of list)"; else result FAIL "$name" "still listed: $(out_of list)"; fi
	elif [[ $want == yes ]]; then
		result FAIL "$name" "not listed: $(out_of list)"
	else
		result PASS "$name" "not listed: $(out_of list)"
	fi
}

# check_get NAME NS MIB THREADS: `namespace get` shows NS's limits (the
# pinned-memory-limit and active-thread-percentage fields: <n>K, <n>M or
# <n>G, the percentage rounded).
check_get() {
	local name=$1 ns=$2 mib=$3 threads=$4 v mem thr
	if ! ns_field get "$ns" pinned-memory-limit; then
		result FAIL "$name" "namespace get failed: $(out_of get)"
		return
	fi
	v=$(tr -d ' \t\n"' <"$WORK/get.out")
	case $v in
	*G) mem=$((${v%G} * 1024)) ;;
	*M) mem=${v%M} ;;
	*K) mem=$((${v%K} / 1024)) ;;
	*) mem="?$v" ;;
	esac
	if ! ns_field get "$ns" active-thread-percentage; then
		result FAIL "$name" "namespace get failed: $(out_of get)"
		return
	fi
	v=$(tr -d ' \t\n"' <"$WORK/get.out")
	thr=$(printf '%.0f' "$v" 2>/dev/null || echo "?$v")
	if [[ $mem == "$mib" && $thr == "$threads" ]]; then
		result PASS "$name" "pinned_memory_limit ${mem} MiB, active_thread_percentage $thr"
	else
		result FAIL "$name" "want ${mib} MiB/${threads}%, got ${mem} MiB/${thr}%"
	fi
}

# v3_client NAME LIMIT VAR=VALUE...: a client step, or SKIP without a client.
# Its output is in V3_OUT.
V3_OUT=""
v3_client() {
	local name=$1 limit=$2
	shift 2
	V3_OUT=""
	if ((${#CLIENT[@]} == 0)); then
		result SKIP "$name" "no CUDA client (--no-client)"
		return
	fi
	V3_OUT=$(run_client "v3-$RANDOM" "$@")
	check_limit "$name" "$limit" "$V3_OUT"
}

v3_checks() {
	log "MPS v3: server $V3_SERVER, namespaces $NS_A and $NS_B from $TOML3"
	mkdir -p "$PIPE3" "$LOG3"
	chmod 755 "$WORK/mps3" "$V3_DIR" "$PIPE3" "$LOG3"
	v3_toml >"$TOML3"

	# ---- v3-1: the daemon and the namespaces' sockets ----------------------------------
	if ! CUDA_MPS_PIPE_DIRECTORY=$PIPE3 CUDA_MPS_LOG_DIRECTORY=$LOG3 CUDA_VISIBLE_DEVICES=$UUID \
		nvidia-cuda-mps-control -d -p 3 -a "$TOML3" >"$WORK/v3-start.out" 2>&1; then
		result FAIL "v3 daemon start (-d -p 3 -a FILE)" "$(tr '\n' ' ' <"$WORK/v3-start.out") $(tail -n 3 "$LOG3"/control.log 2>/dev/null | tr '\n' ' ')"
		return
	fi
	V3_STARTED=1
	result PASS "v3 daemon start (-d -p 3 -a FILE)" "started with $TOML3"
	local ns
	for ns in "$NS_A" "$NS_B"; do
		if wait_socket "$ns"; then
			result PASS "v3 socket of TOML namespace ${ns}" "$(ns_dir "$ns")/control"
		else
			result FAIL "v3 socket of TOML namespace ${ns}" "no $(ns_dir "$ns")/control (contents: $(ls -A "$PIPE3/$V3_SERVER" 2>/dev/null | tr '\n' ' '))"
		fi
	done

	# ---- v3-2: list and get ------------------------------------------------------------
	check_listed "v3 namespace list shows $NS_A" "$NS_A" yes
	check_listed "v3 namespace list shows $NS_B" "$NS_B" yes
	check_get "v3 namespace get $NS_A" "$NS_A" "$LIMIT_A" "$THREAD_A"
	check_get "v3 namespace get $NS_B" "$NS_B" "$LIMIT_B" "$THREAD_B"
	if ctl3 namespace list --server=gs_no_such_server >"$WORK/nolist.out" 2>&1; then
		result FAIL "v3 namespace list of an unknown server" "succeeded ($(out_of nolist)): the plugin takes a failure as a server that does not answer"
	else
		result PASS "v3 namespace list of an unknown server" "fails: $(out_of nolist)"
	fi

	# ---- v3-3, v3-4: a client in each namespace, and one raising its limits ------------
	local sm_a="" sm_b="" sm_raise=""
	v3_client "v3 client in $NS_A" "$LIMIT_A" CUDA_MPS_PIPE_DIRECTORY="$(ns_dir "$NS_A")"
	sm_a=$(field sms "$V3_OUT")
	v3_client "v3 client in $NS_B" "$LIMIT_B" CUDA_MPS_PIPE_DIRECTORY="$(ns_dir "$NS_B")"
	sm_b=$(field sms "$V3_OUT")
	v3_client "v3 client in $NS_A raising its env limits" "$LIMIT_A" CUDA_MPS_PIPE_DIRECTORY="$(ns_dir "$NS_A")" \
		CUDA_MPS_PINNED_DEVICE_MEM_LIMIT="0=$((CEILING_MIB * 2))M" CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=100
	sm_raise=$(field sms "$V3_OUT")
	if ((${#CLIENT[@]} == 0)); then
		result SKIP "v3 thread percentage" "no CUDA client (--no-client)"
	elif [[ -n $sm_a && -n $sm_b && -n $sm_raise ]]; then
		local st=INFO
		if ((sm_a <= sm_b)); then st=PASS; fi
		result "$st" "v3 thread percentage ${THREAD_A}%/${THREAD_B}%" "SMs reported ${sm_a}/${sm_b}"
		if ((sm_raise > sm_a)); then
			result FAIL "v3 client raising its thread percentage" "SMs ${sm_raise}, more than the ${sm_a} of its namespace"
		else
			result PASS "v3 client raising its thread percentage" "SMs ${sm_raise}, not more than the ${sm_a} of its namespace"
		fi
	else
		result INFO "v3 thread percentage" "SM count not reported"
	fi

	# ---- v3-5: the container's view: only its namespace's directory ---------------------
	if ((${#CLIENT[@]} == 0)); then
		result SKIP "v3 client seeing only its namespace" "no CUDA client (--no-client)"
	elif ! command -v unshare >/dev/null; then
		result INFO "v3 client seeing only its namespace" "not checked: unshare not found"
	elif ! start_holder "$(ns_dir "$NS_B")"; then
		result FAIL "v3 holding client in $NS_B" "did not start: $(tail -n 2 "$WORK/holder.out" | tr '\n' ' ')"
		stop_holder
	else
		# As the plugin's container: A's directory at another path, the daemon's
		# pipe directory (every other namespace) hidden under an empty tmpfs.
		local ctr="$WORK/ctr/pipe" script out
		mkdir -p "$ctr"
		printf -v script 'mount --bind %q %q && mount -t tmpfs -o size=1m tmpfs %q && exec "$@"' "$(ns_dir "$NS_A")" "$ctr" "$V3_DIR"
		out=$(mountns_client "$WORK/ctr-a.err" "$script" sh CUDA_MPS_PIPE_DIRECTORY="$ctr")
		[[ -n $(field allocated_mib "$out") ]] || out="error: $(tail -n 3 "$WORK/ctr-a.err" | tr '\n' ' ')"
		check_limit "v3 client with only $NS_A's directory mounted" "$LIMIT_A" "$out"
		out=$(mountns_client "$WORK/ctr-b.err" "$script" sh CUDA_MPS_PIPE_DIRECTORY="$(ns_dir "$NS_B")")
		[[ -n $(field allocated_mib "$out") ]] || out="$(tail -n 1 "$WORK/ctr-b.err")"
		check_no_gain "v3 client of $NS_A pointing at $NS_B's socket" "$LIMIT_A" "$out"
		out=$(mountns_client "$WORK/ctr-top.err" "$script" sh CUDA_MPS_PIPE_DIRECTORY="$PIPE3")
		[[ -n $(field allocated_mib "$out") ]] || out="$(tail -n 1 "$WORK/ctr-top.err")"
		check_no_gain "v3 client of $NS_A pointing at the daemon's pipe" "$LIMIT_A" "$out"
		out=$(mountns_client "$WORK/ctr-raise.err" "$script" sh CUDA_MPS_PIPE_DIRECTORY="$ctr" \
			CUDA_MPS_PINNED_DEVICE_MEM_LIMIT="0=$((CEILING_MIB * 2))M" CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=100)
		[[ -n $(field allocated_mib "$out") ]] || out="error: $(tail -n 3 "$WORK/ctr-raise.err" | tr '\n' ' ')"
		check_limit "v3 mounted client of $NS_A raising its env limits" "$LIMIT_A" "$out"
		stop_holder
	fi

	# ---- v3-6: run-time namespace commands (NVIDIA's "MPS v3 Interface") ----------------
	if ns_run create create "$NS_C" &&
		ns_run create set "$NS_C" "--pinned-memory-limit=${LIMIT_C}M" "--active-thread-percentage=$THREAD_C" "--client-priority=0"; then
		result PASS "v3 namespace create (run time) $NS_C" "accepted: $(out_of create)"
		check_listed "v3 namespace list shows $NS_C" "$NS_C" yes
		check_get "v3 namespace get $NS_C" "$NS_C" "$LIMIT_C" "$THREAD_C"
		if wait_socket "$NS_C"; then
			result PASS "v3 socket of run-time namespace $NS_C" "$(ns_dir "$NS_C")/control"
		else
			result FAIL "v3 socket of run-time namespace $NS_C" "no $(ns_dir "$NS_C")/control"
		fi
		v3_client "v3 client in run-time $NS_C" "$LIMIT_C" CUDA_MPS_PIPE_DIRECTORY="$(ns_dir "$NS_C")"
		if ns_run delete delete "$NS_C"; then
			result PASS "v3 namespace delete (run time) $NS_C" "accepted: $(out_of delete)"
			check_listed "v3 namespace list after delete" "$NS_C" no
			if wait_socket "$NS_C" absent; then
				result PASS "v3 socket of deleted $NS_C" "gone"
			else
				result INFO "v3 socket of deleted $NS_C" "still there: $(ns_dir "$NS_C")/control"
			fi
		else
			result FAIL "v3 namespace delete (run time) $NS_C" "$(out_of delete)"
		fi
	else
		result FAIL "v3 namespace create (run time) $NS_C" "$(out_of create)"
		check_listed "v3 namespace list after a failed create" "$NS_C" no
	fi
	if ns_field get-gone "$NS_C" pinned-memory-limit; then
		result FAIL "v3 namespace get of a deleted namespace" "succeeded: $(out_of get-gone)"
	else
		result PASS "v3 namespace get of a deleted namespace" "fails: $(out_of get-gone)"
	fi

	# ---- v3-7: -q -------------------------------------------------------------------------
	if ctl3 -q >"$WORK/v3-quit.out" 2>&1; then
		V3_STARTED=0
		if ns_run list-quit list; then
			result FAIL "v3 daemon stop (-q)" "namespace list still answers: $(out_of list-quit)"
		else
			result PASS "v3 daemon stop (-q)" "stopped; namespace list now fails: $(out_of list-quit)"
		fi
	else
		result FAIL "v3 daemon stop (-q)" "$(out_of v3-quit)"
	fi
}

# ---- main ------------------------------------------------------------------------------
if ((RUN_LEGACY)); then legacy_checks; fi
if ((RUN_V3)); then
	if [[ -n $V3_SKIP ]]; then
		result SKIP "MPS v3" "$V3_SKIP: the v3 checks were not run"
	else
		v3_checks
	fi
fi

# ---- summary -------------------------------------------------------------------------
echo
echo "== gpuslice MPS hardware check: $NAME ($UUID), driver $DRIVER =="
if ((RUN_LEGACY)); then echo "daemon defaults: pinned memory ${CEILING_MIB} MiB per client, active threads 100%"; fi
if ((RUN_V3)) && [[ -z $V3_SKIP ]]; then
	echo "MPS v3 (CUDA ${CUDA_VER}): server $V3_SERVER ceiling ${CEILING_MIB} MiB, namespaces ${NS_A} ${LIMIT_A} MiB/${THREAD_A}%, ${NS_B} ${LIMIT_B} MiB/${THREAD_B}%"
fi
printf '%s\n' "${RESULTS[@]}"
if ((FAILED)); then
	echo "RESULT: some checks FAILED (see above)"
	exit 1
fi
echo "RESULT: all checks as expected"
