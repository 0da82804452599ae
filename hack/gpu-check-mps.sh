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
# At the end the compute mode is restored and the daemon is stopped.
#
# Usage: hack/gpu-check-mps.sh [--gpu INDEX|UUID] [--ceiling-mib N]
#                              [--limits-mib A,B] [--threads A,B] [--force] [--keep]
# Run as root. It can be run on its own or from hack/gpu-check.sh.
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

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
	case "$1" in
	--gpu) GPU=$2; shift 2 ;;
	--ceiling-mib) CEILING_MIB=$2; shift 2 ;;
	--limits-mib) LIMITS_MIB=$2; shift 2 ;;
	--threads) THREADS=$2; shift 2 ;;
	--force) FORCE=1; shift ;;
	--keep) KEEP=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
	esac
done

IFS=, read -r LIMIT_A LIMIT_B <<<"$LIMITS_MIB"
IFS=, read -r THREAD_A THREAD_B <<<"$THREADS"
for n in "$CEILING_MIB" "$LIMIT_A" "$LIMIT_B" "$THREAD_A" "$THREAD_B"; do
	[[ $n =~ ^[0-9]+$ ]] || { echo "not a number: $n" >&2; exit 2; }
done
# The clients stop allocating here, so a client that is not limited is seen
# as "not limited" without taking the whole GPU.
BOUND_MIB=$((CEILING_MIB * 2 + 1024))

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
log "GPU $GPU: $NAME $UUID, ${MEM_MIB} MiB, compute capability ${CC:-unknown}, MIG ${MIG:-N/A}, compute mode $ORIG_MODE, driver $DRIVER"

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

# ---- the CUDA client -----------------------------------------------------------
WORK=$(mktemp -d /tmp/gpuslice-mps-check.XXXXXX)
chmod 755 "$WORK"
CLIENT=()
if command -v python3 >/dev/null && python3 -c 'import torch' >/dev/null 2>&1; then
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

ctl() { # command...: one command on the control pipe
	echo "$*" | CUDA_MPS_PIPE_DIRECTORY=$PIPE CUDA_MPS_LOG_DIRECTORY=$LOGD CUDA_VISIBLE_DEVICES=$UUID \
		timeout 20 nvidia-cuda-mps-control
}

cleanup() {
	set +e
	[[ -n $HOLDER_PID ]] && kill "$HOLDER_PID" 2>/dev/null && wait "$HOLDER_PID" 2>/dev/null
	if ((DAEMON_STARTED)); then
		ctl quit >/dev/null 2>&1
		log "MPS daemon stopped"
	fi
	case "$ORIG_MODE" in
	Default) nvidia-smi -i "$GPU" -c DEFAULT >/dev/null ;;
	Exclusive_Process) nvidia-smi -i "$GPU" -c EXCLUSIVE_PROCESS >/dev/null ;;
	Prohibited) nvidia-smi -i "$GPU" -c PROHIBITED >/dev/null ;;
	*) log "unknown original compute mode '$ORIG_MODE': set it back by hand" ;;
	esac
	log "compute mode restored to $(query compute_mode)"
	if ((KEEP)); then log "logs kept in $LOGD"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

nvidia-smi -i "$GPU" -c EXCLUSIVE_PROCESS >/dev/null
log "compute mode: $(query compute_mode)"
CUDA_MPS_PIPE_DIRECTORY=$PIPE CUDA_MPS_LOG_DIRECTORY=$LOGD CUDA_VISIBLE_DEVICES=$UUID nvidia-cuda-mps-control -d
DAEMON_STARTED=1
ctl set_default_active_thread_percentage 100
ctl set_default_device_pinned_mem_limit 0 "${CEILING_MIB}M"
log "daemon defaults: active thread percentage $(ctl get_default_active_thread_percentage), pinned memory limit of device 0: $(ctl get_default_device_pinned_mem_limit 0)"

# The environment of every client: nothing of ours leaks in (env -i).
BASE_ENV=(PATH="$PATH" HOME=/tmp)
for v in LD_LIBRARY_PATH PYTHONPATH VIRTUAL_ENV CONDA_PREFIX; do
	if [[ -n ${!v:-} ]]; then BASE_ENV+=("$v=${!v}"); fi
done

# run_client NAME [VAR=VALUE...]: run the probe client as an MPS client (env -i:
# nothing else leaks in) and print allocated_mib and sms.
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
env -i "${BASE_ENV[@]}" CUDA_MPS_PIPE_DIRECTORY="$PIPE" \
	"${CLIENT[@]}" hold "$STEP_MIB" 120 >"$WORK/holder.out" 2>&1 &
HOLDER_PID=$!
for _ in $(seq 1 60); do
	grep -q HOLDING "$WORK/holder.out" 2>/dev/null && break
	sleep 1
done
if grep -q HOLDING "$WORK/holder.out"; then
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
		# ns_probe SCRIPT ARG0 ERRFILE: the probe client, after SCRIPT (with $0
		# = ARG0) ran in a private mount namespace.
		ns_probe() {
			unshare --mount --propagation private -- /bin/sh -c "$1" "$2" \
				env -i "${BASE_ENV[@]}" \
				CUDA_MPS_PIPE_DIRECTORY="$PIPE" CUDA_MPS_PINNED_DEVICE_MEM_LIMIT="0=${LIMIT_A}M" \
				timeout "$CLIENT_TIMEOUT" "${CLIENT[@]}" probe "$STEP_MIB" "$BOUND_MIB" 2>"$3" || true
		}
		# shellcheck disable=SC2016 # $@ and $0 expand in the inner shell.
		OUT_SHM=$(ns_probe 'mount -t tmpfs -o size=64m tmpfs /dev/shm && exec "$@"' sh "$WORK/shm.err")
		if grep -q '^RESULT' <<<"$OUT_SHM"; then
			result INFO "client with a private /dev/shm" "works: MPS does not need a shared /dev/shm here (${OUT_SHM#RESULT })"
		else
			result INFO "client with a private /dev/shm" "fails: MPS needs the shared /dev/shm ($(tail -n 1 "$WORK/shm.err"))"
		fi
		# shellcheck disable=SC2016
		OUT_RO=$(ns_probe 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"' "$PIPE" "$WORK/ro.err")
		if grep -q '^RESULT' <<<"$OUT_RO"; then
			result INFO "client with a read-only pipe directory" "works (${OUT_RO#RESULT }): ReadOnlyPipeMount can be on"
		else
			result INFO "client with a read-only pipe directory" "fails ($(tail -n 1 "$WORK/ro.err")): keep ReadOnlyPipeMount off"
		fi
	else
		result INFO "private /dev/shm, read-only pipe dir" "not checked: unshare not found"
	fi
	kill "$HOLDER_PID" 2>/dev/null || true
	wait "$HOLDER_PID" 2>/dev/null || true
	HOLDER_PID=""
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

# ---- summary -------------------------------------------------------------------------
echo
echo "== gpuslice MPS hardware check: $NAME ($UUID), driver $DRIVER =="
echo "daemon defaults: pinned memory ${CEILING_MIB} MiB per client, active threads 100%"
printf '%s\n' "${RESULTS[@]}"
if ((FAILED)); then
	echo "RESULT: some checks FAILED (see above)"
	exit 1
fi
echo "RESULT: all checks as expected"
