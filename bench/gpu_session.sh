#!/usr/bin/env bash
# The one command a GPU session runs on the device machine (bash bench/gpu_session.sh, or
# make gpu-check), from the repository root. Its essential measurements end within 8 minutes
# on a fresh machine (nothing compiled or cached yet), most important first:
#
#   1. environment      GPU, driver, python / torch / triton versions; slimtriton imports
#                       from this checkout (PYTHONPATH); no install, no network
#   2. resnet50 fp16    bench/gpu.py --plan essential: batch 256 then 1, slimtriton (CUDA
#                       graph on) vs torch eager channels_last (cuDNN) vs torch.compile
#                       default mode; relative L2 error vs the float32 torch run; TFLOP/s vs
#                       a measured peak (an 8192^3 fp16 torch.matmul). gpu.json/gpu.md are
#                       rewritten after every measurement.
#   3. conv kernels     bench/kernels.py --quick: our conv vs cuDNN on ResNet-50's conv shapes
#                       (batch 32); kernels.json rewritten after every shape
#   4. GPU tests        the GPU test subset (CUDA graph / device paths first, then the kernels)
#   5. audit            slimtriton audit resnet_v1_50 for this GPU's arch, batches 1,32,256,
#                       with the performance model (--gpu $ST_GPU_MODEL) -> audit.json
#   6. extras           only with time left inside ST_TOTAL_S: bench/gpu.py --plan extras
#                       (CUDA graph off/on counterparts, reduce-overhead, then max-autotune)
#                       -> gpu_extras.json/.md
#
# Limits (seconds; each step runs under `timeout`, and never past the session's total):
#   ST_ENV_S=45 ST_GPU_S=220 ST_KERNELS_S=70 ST_TEST_S=90 ST_AUDIT_S=45  (sum 470)
#   ST_TOTAL_S=470: the whole session; a step gets min(its limit, what is left); a step with
#   under ST_MIN_STEP_S=5 s left is skipped; extras run only with ST_EXTRAS_MIN_S=60 s left.
# The benchmarks use slimtriton's default tiles (--no-autotune: timing tile candidates costs
# minutes of compiling). PYTHON overrides the interpreter (the tests use a stub).
#
# Output: $OUT when set (the device tool brings it back), else bench/results/:
# gpu_session.log (everything printed), gpu_session.md (one line per step: status, seconds,
# limit), gpu.json, gpu.md, kernels.json, audit.json, gpu_extras.json, gpu_extras.md (+ charts).
# The exit status is 0 when every step passed, else 1 (the log says which failed).
set -u
cd "$(dirname "$0")/.."
REPO=$(pwd)
DEST=${OUT:-$REPO/bench/results}
mkdir -p "$DEST"
LOG=$DEST/gpu_session.log
SUMMARY=$DEST/gpu_session.md

ST_ENV_S=${ST_ENV_S:-45}
ST_GPU_S=${ST_GPU_S:-220}
ST_KERNELS_S=${ST_KERNELS_S:-70}
ST_TEST_S=${ST_TEST_S:-90}
ST_AUDIT_S=${ST_AUDIT_S:-45}
ST_TOTAL_S=${ST_TOTAL_S:-470}
ST_MIN_STEP_S=${ST_MIN_STEP_S:-5}
ST_EXTRAS_MIN_S=${ST_EXTRAS_MIN_S:-60}
ST_GPU_MODEL=${ST_GPU_MODEL:-h200}

PY=${PYTHON:-python3}   # the machine's python3 holds the CUDA torch and Triton
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
unset TRITON_INTERPRET                                  # compile for the GPU
export SLIMTRITON_AUTOTUNE=0                            # the untimed default tiles
export SLIMTRITON_CACHE_DIR=${SLIMTRITON_CACHE_DIR:-$(mktemp -d /tmp/slimtriton-cache.XXXXXX)}
export TRITON_DEFAULT_FP_FUSION=${TRITON_DEFAULT_FP_FUSION:-1}
export MPLBACKEND=Agg

: > "$LOG"
{
  echo "# slimtriton GPU session"
  echo
  echo "- started $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (tree differs from it)'), python $PY"
  echo "- session limit ${ST_TOTAL_S} s; output in $DEST; log gpu_session.log"
  echo
  echo "| step | status | seconds | limit s |"
  echo "|:---|:---|---:|---:|"
} > "$SUMMARY"
FAILED=0
SESSION_START=$SECONDS

left() { echo $((ST_TOTAL_S - (SECONDS - SESSION_START))); }

# step NAME LIMIT CMD...: runs CMD under `timeout min(LIMIT, time left)`, output appended to
# the log, one line in the summary. `{BUDGET}` in CMD is replaced by the effective limit
# less 15 s (the script's own budget: it stops starting work in time to write its results).
step() {
  local name=$1 limit=$2; shift 2
  local remaining start status rc arg
  remaining=$(left)
  if [ "$remaining" -lt "$limit" ]; then limit=$remaining; fi
  if [ "$limit" -lt "$ST_MIN_STEP_S" ]; then
    echo "=== [$((SECONDS - SESSION_START)) s] $name: SKIPPED (${remaining} s left in the session)" | tee -a "$LOG"
    echo "| $name | skipped: session time | 0 | $limit |" >> "$SUMMARY"
    return
  fi
  local cmd=()
  local budget=$((limit > 20 ? limit - 15 : limit))
  for arg in "$@"; do cmd+=("${arg//\{BUDGET\}/$budget}"); done
  start=$SECONDS
  echo "=== [$((SECONDS - SESSION_START)) s] $name (limit ${limit} s): ${cmd[*]:0:200}" | tee -a "$LOG"
  timeout --kill-after=5 "$limit" "${cmd[@]}" >> "$LOG" 2>&1
  rc=$?
  case $rc in
    0) status=ok ;;
    124|137) status="TIMED OUT"; FAILED=1 ;;
    *) status="FAILED (exit $rc)"; FAILED=1 ;;
  esac
  echo "=== $name: $status after $((SECONDS - start)) s" | tee -a "$LOG"
  echo "| $name | $status | $((SECONDS - start)) | $limit |" >> "$SUMMARY"
}

step environment "$ST_ENV_S" bash -c "
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
  fi
  '$PY' - <<'EOF'
import platform, sys
import numpy, torch, triton
print('python', platform.python_version(), sys.executable)
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())
print('triton', triton.__version__, 'numpy', numpy.__version__)
assert torch.cuda.is_available(), 'torch sees no CUDA device'
p = torch.cuda.get_device_properties(0)
print('device', p.name, 'sm_%d%d' % (p.major, p.minor), p.multi_processor_count, 'SMs', round(p.total_memory / 2**30, 1), 'GiB')
for m in ('hypothesis', 'pytest', 'matplotlib', 'safetensors', 'tqdm', 'PIL', 'xdist', 'pytest_timeout'):
    try:
        mod = __import__(m)
        print('have', m, getattr(mod, '__version__', ''))
    except ImportError:
        print('missing', m)
import slimtriton, slimtriton.kernels
from slimtriton.kernels.config import interpreting
assert not interpreting(), 'TRITON_INTERPRET is on'
EOF"
if [ "$FAILED" != 0 ]; then
  echo "environment check failed: no GPU work attempted (see $LOG)" | tee -a "$LOG"
  cat "$SUMMARY"
  exit 1
fi
ARCH=$("$PY" -c "import torch; p = torch.cuda.get_device_capability(); print(p[0] * 10 + p[1])" 2>>"$LOG" | tail -1)

step "resnet_v1_50 float16 b256+b1: slimtriton vs eager vs torch.compile" "$ST_GPU_S" \
  "$PY" bench/gpu.py --quick --plan essential --no-autotune --compile-reserve 50 \
  --budget "{BUDGET}" --out-dir "$DEST"
step "bench/kernels.py --quick (ResNet-50 conv shapes vs cuDNN)" "$ST_KERNELS_S" \
  "$PY" bench/kernels.py --quick --no-autotune --budget "{BUDGET}" --out "$DEST/kernels.json"

PYTEST_ARGS=(-q -p no:cacheprovider -rfEs --maxfail=20)
if "$PY" -c "import pytest_timeout" 2>/dev/null; then PYTEST_ARGS+=(--timeout 60); fi
step "GPU tests" "$ST_TEST_S" "$PY" -m pytest "${PYTEST_ARGS[@]}" \
  tests/test_gpu_paths.py tests/kernels/test_infra.py tests/kernels
step "audit resnet_v1_50 sm_$ARCH (model: $ST_GPU_MODEL)" "$ST_AUDIT_S" "$PY" -m slimtriton.cli audit resnet_v1_50 \
  --dtype float16 --arch "$ARCH" --batch 1,32,256 --gpu "$ST_GPU_MODEL" --json "$DEST/audit.json"

if [ "$(left)" -ge "$ST_EXTRAS_MIN_S" ]; then
  step "extras: CUDA graph counterparts, reduce-overhead, max-autotune" "$(left)" \
    "$PY" bench/gpu.py --quick --plan extras --no-autotune --compile-reserve 50 \
    --budget "{BUDGET}" --name gpu_extras --out-dir "$DEST"
else
  echo "=== extras: SKIPPED ($(left) s left, ${ST_EXTRAS_MIN_S} s needed)" | tee -a "$LOG"
  echo "| extras | skipped: $(left) s left | 0 | 0 |" >> "$SUMMARY"
fi

{
  echo
  echo "- finished after $((SECONDS - SESSION_START)) s; $([ $FAILED = 0 ] && echo 'every step passed' || echo 'a step failed: see gpu_session.log')"
  echo
  echo '```'
  grep -E "^(=== |FAILED |ERROR |[0-9]+ (passed|failed)|.*(passed|failed|skipped).* in [0-9.]+s|PASS|FAIL |SKIP|geomean|peak |GPU: |\[ *[0-9]+ s\] )" "$LOG" | tail -60
  echo '```'
} >> "$SUMMARY"
cat "$SUMMARY"
exit $FAILED
