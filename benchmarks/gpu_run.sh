#!/usr/bin/env bash
# One command for a GPU machine: install DeePAQ, benchmark scoring and training, write tables to $OUT.
#
#   bash benchmarks/gpu_run.sh                # on the GPU machine (the device tool sets $OUT)
#   OUT=/tmp/smoke bash benchmarks/gpu_run.sh --cpu-smoke   # here: tiny sizes on the CPU, no install
#
# Before a GPU run, once, on a machine with network access: `bash benchmarks/gpu_prepare.sh`. It
# puts into .gpu/ (ignored by git; carry it) the wheels the GPU image may lack (soundfile, soxr, threadpoolctl,
# pyloudnorm, cffi, pycparser) and, when ../shared/data exists, copies of tcdaudio14 and sisec08
# with this machine's CPU scores of them, so the GPU run checks that its scores agree.
#
# Steps (each logged to $OUT/run.log; a failing step does not stop the later ones):
#   1. install: the carried wheels, then `pip install --no-deps --no-build-isolation -e .` (the
#      machine reaches no registry); if that fails, run from the tree with a deepaq_resources link;
#   2. benchmarks/bench_gpu.py: one 120 s pair (compact and MERT-95M-sized), 200 pairs of 10 s,
#      LoRA training steps at 16 x 8 x 4 s, CPU/GPU agreement -> $OUT/gpu_bench.md and .json;
#   3. benchmarks/check_scores.py --device cuda against the carried CPU scores (if carried);
#   4. the core tests that touch scoring, on the GPU machine -> $OUT/tests.log.
set -u -o pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/out/gpu}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
SMOKE=0
[ "${1:-}" = "--cpu-smoke" ] && SMOKE=1
export PYTHONUNBUFFERED=1
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$OUT/run.log"; }

log "DeePAQ gpu_run.sh (smoke=$SMOKE) in $ROOT, python $($PY -c 'import sys; print(sys.version.split()[0])')"
if [ $SMOKE = 0 ]; then
  nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || log "nvidia-smi failed"
  if ls .gpu/wheels/*.whl >/dev/null 2>&1; then
    $PY -m pip install --no-index --find-links .gpu/wheels soundfile soxr pyloudnorm threadpoolctl >>"$OUT/install.log" 2>&1 \
      && log "installed the carried wheels" || log "installing the carried wheels failed (see install.log)"
  fi
  if $PY -m pip install --no-deps --no-build-isolation -e . >>"$OUT/install.log" 2>&1; then
    log "pip install -e . done"
  else
    log "pip install -e . failed (see install.log): running from the tree"
    mkdir -p /tmp/deepaq-shim && ln -sfn "$ROOT/resources" /tmp/deepaq-shim/deepaq_resources
    export PYTHONPATH="$ROOT:/tmp/deepaq-shim${PYTHONPATH:+:$PYTHONPATH}"
  fi
fi
if ! $PY -c "import deepaq_core, deepaq_resources, soundfile, soxr, pyloudnorm, threadpoolctl" 2>>"$OUT/run.log"; then
  log "DeePAQ cannot be imported; stopping"
  exit 1
fi
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$OUT/run.log"

if [ $SMOKE = 1 ]; then
  log "bench_gpu.py --cpu-smoke"
  $PY benchmarks/bench_gpu.py --cpu-smoke --out "$OUT" 2>&1 | tee "$OUT/bench.log" || log "bench_gpu.py failed"
  if [ -f .gpu/cpu_scores.json ] && [ -d .gpu/data ]; then
    $PY benchmarks/check_scores.py --data .gpu/data --device cpu --compare .gpu/cpu_scores.json 2>&1 \
      | tee "$OUT/check_scores.log" || log "check_scores.py found differences"
  fi
  log "done"
  exit 0
fi

log "bench_gpu.py (full sizes)"
$PY benchmarks/bench_gpu.py --device cuda --out "$OUT" 2>&1 | tee "$OUT/bench.log" || log "bench_gpu.py failed"
if [ -f .gpu/cpu_scores.json ] && [ -d .gpu/data ]; then
  log "check_scores.py on cuda"
  $PY benchmarks/check_scores.py --data .gpu/data --device cuda --compare .gpu/cpu_scores.json 2>&1 \
    | tee "$OUT/check_scores.log" || log "check_scores.py found differences"
fi
log "core scoring tests"
timeout 240 $PY -m pytest -q -x tests/core/test_scoring.py tests/core/test_speed_paths.py tests/core/test_auditory.py \
  >"$OUT/tests.log" 2>&1 && log "tests passed" || log "tests failed or timed out (see tests.log)"
log "done"
