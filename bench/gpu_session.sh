#!/usr/bin/env bash
# The one command a GPU session runs on the device machine (bash bench/gpu_session.sh, or
# make gpu-check), from the repository root, inside one 10-minute call:
#
#   1. environment: GPU, driver, python / torch / triton versions (no install: the machine's
#      python3 already holds a CUDA torch, triton, numpy, pytest, hypothesis, matplotlib;
#      slimtriton is used from this checkout through PYTHONPATH, nothing is downloaded)
#   2. the GPU test subset, unchanged: tests/kernels (bfloat16 included: it runs on a GPU),
#      compile / fusion tests, CUDA graph + device + autotune tests (tests/test_gpu_paths.py)
#   3. `slimtriton audit resnet_v1_50` for this GPU's architecture (spills, tensor cores)
#   4. bench/kernels.py --quick (our conv vs cuDNN on ResNet-50's conv shapes, batch 32)
#   5. bench/gpu.py --quick (slimtriton vs torch eager vs torch.compile; partial results are
#      written after each measurement, so a step cut by its time limit keeps what it measured)
#
# Every step has its own time limit (seconds; override with the variables below) so the
# whole run ends inside 10 minutes: ST_TEST_S=230 ST_AUDIT_S=60 ST_KERNELS_S=90 ST_GPU_S=170.
# In this all-in-one run the benchmarks use slimtriton's default tiles (--no-autotune:
# timing ~7 tile candidates per conv shape costs minutes of compiling), and torch.compile
# max-autotune (minutes to compile) is left out by the budget and listed as skipped.
# GPU_SESSION_PART=tests runs steps 1-3 only. GPU_SESSION_PART=bench runs steps 1, 4 and 5
# only, with autotuning on and longer limits (ST_KERNELS_S=150 ST_GPU_S=420): the numbers to
# commit, in a second call.
#
# Output (at most 8 files, one folder): $OUT when set (the device tool brings it back), else
# bench/results/: gpu_session.log (everything printed), gpu_session.md (one line per step
# with its status and time), kernels.json, gpu.json, gpu.md, gpu.png, audit.json.
# The exit status is 0 when every step passed, else 1 (the log says which failed).
set -u
cd "$(dirname "$0")/.."
REPO=$(pwd)
DEST=${OUT:-$REPO/bench/results}
mkdir -p "$DEST"
LOG=$DEST/gpu_session.log
SUMMARY=$DEST/gpu_session.md
PART=${GPU_SESSION_PART:-all}
AUTOTUNE_FLAG=(--no-autotune)
if [ "$PART" = bench ]; then
  : "${ST_KERNELS_S:=150}" "${ST_GPU_S:=420}"
  AUTOTUNE_FLAG=()
fi
ST_TEST_S=${ST_TEST_S:-230}
ST_AUDIT_S=${ST_AUDIT_S:-60}
ST_KERNELS_S=${ST_KERNELS_S:-90}
ST_GPU_S=${ST_GPU_S:-170}

# The machine's python3 holds the CUDA torch; a local .venv is used only where it sees a GPU.
PY=${PYTHON:-python3}
if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ] && .venv/bin/python -c "import torch,sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
  PY=.venv/bin/python
fi
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
unset TRITON_INTERPRET                                  # compile for the GPU
export SLIMTRITON_CACHE_DIR=${SLIMTRITON_CACHE_DIR:-$(mktemp -d /tmp/slimtriton-cache.XXXXXX)}
export MPLBACKEND=Agg

: > "$LOG"
{
  echo "# slimtriton GPU session ($PART)"
  echo
  echo "- started $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (tree differs from it)'), python $PY"
  echo "- output in $DEST; log gpu_session.log"
  echo
  echo "| step | status | seconds | limit s |"
  echo "|:---|:---|---:|---:|"
} > "$SUMMARY"
FAILED=0
SESSION_START=$SECONDS

# step NAME LIMIT CMD...: runs CMD under `timeout LIMIT`, output appended to the log.
step() {
  local name=$1 limit=$2; shift 2
  local start=$SECONDS status rc
  local cmd="$*"
  echo "=== [$((SECONDS - SESSION_START)) s] $name (limit ${limit} s): ${cmd:0:160}" | tee -a "$LOG"
  timeout --kill-after=10 "$limit" "$@" >> "$LOG" 2>&1
  rc=$?
  case $rc in
    0) status=ok ;;
    124|137) status="TIMED OUT"; FAILED=1 ;;
    *) status="FAILED (exit $rc)"; FAILED=1 ;;
  esac
  echo "=== $name: $status after $((SECONDS - start)) s" | tee -a "$LOG"
  echo "| $name | $status | $((SECONDS - start)) | $limit |" >> "$SUMMARY"
}

step environment 60 bash -c "
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
  $PY - <<'EOF'
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
import slimtriton.kernels as K
from slimtriton.kernels.config import interpreting
assert not interpreting(), 'TRITON_INTERPRET is on'
EOF"
if [ "$FAILED" != 0 ]; then
  echo "environment check failed: no GPU work attempted (see $LOG)" | tee -a "$LOG"
  exit 1
fi
ARCH=$($PY -c "import torch; p = torch.cuda.get_device_capability(); print(p[0] * 10 + p[1])")

if [ "$PART" != bench ]; then
  PYTEST_ARGS=(-q -p no:cacheprovider -rfEs --maxfail=40)
  if $PY -c "import xdist" 2>/dev/null; then PYTEST_ARGS+=(-n 8); fi          # Triton compiles on 8 cores
  if $PY -c "import pytest_timeout" 2>/dev/null; then PYTEST_ARGS+=(--timeout 150); fi
  # SLIMTRITON_AUTOTUNE=0: the default tile of each kernel (every candidate is checked by
  # test_every_gemm_candidate_computes_the_same_conv, autotuning by its own test).
  step "GPU tests" "$ST_TEST_S" env SLIMTRITON_AUTOTUNE=0 "$PY" -m pytest "${PYTEST_ARGS[@]}" \
    tests/test_gpu_paths.py tests/kernels tests/test_compile.py tests/test_compile_hypothesis.py \
    tests/fusion tests/test_minimum.py tests/test_session.py
  step "audit resnet_v1_50 sm_$ARCH" "$ST_AUDIT_S" "$PY" -m slimtriton.cli audit resnet_v1_50 \
    --dtype float16 --arch "$ARCH" --json "$DEST/audit.json"
fi

if [ "$PART" != tests ]; then
  step "bench/kernels.py --quick ${AUTOTUNE_FLAG[*]:-}" "$ST_KERNELS_S" "$PY" bench/kernels.py --quick \
    "${AUTOTUNE_FLAG[@]}" --budget $((ST_KERNELS_S - 30)) --out "$DEST/kernels.json"
  step "bench/gpu.py --quick ${AUTOTUNE_FLAG[*]:-}" "$ST_GPU_S" "$PY" bench/gpu.py --quick \
    "${AUTOTUNE_FLAG[@]}" --budget $((ST_GPU_S - 20)) --out-dir "$DEST"
fi

echo >> "$SUMMARY"
echo "- finished after $((SECONDS - SESSION_START)) s; $([ $FAILED = 0 ] && echo 'every step passed' || echo 'a step failed: see gpu_session.log')" >> "$SUMMARY"
echo >> "$SUMMARY"
echo '```' >> "$SUMMARY"
grep -E "^(=== |FAILED |ERROR |[0-9]+ (passed|failed)|.*(passed|failed|skipped).* in [0-9.]+s|PASS|FAIL |SKIP|geomean)" "$LOG" | tail -60 >> "$SUMMARY"
echo '```' >> "$SUMMARY"
cat "$SUMMARY"
exit $FAILED
