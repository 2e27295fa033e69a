#!/usr/bin/env bash
# Fill .gpu/ (ignored by git) with what benchmarks/gpu_run.sh needs on a GPU machine that reaches no
# registry: wheels the GPU image lacks (for its Python, 3.12 by default: GPU_PYTHON_VERSION), and,
# when the developer data exists, copies of tcdaudio14 and sisec08 with this machine's CPU scores.
#
#   bash benchmarks/gpu_prepare.sh        # then carry .gpu with the device tool
set -eu -o pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VER=${GPU_PYTHON_VERSION:-3.12}
mkdir -p .gpu/wheels
$PY -m pip download --only-binary=:all: --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  --python-version "$VER" --no-deps -d .gpu/wheels soundfile soxr pyloudnorm threadpoolctl cffi pycparser
DATA=${DEEPAQ_DATA:-../shared/data}
if [ -f "$DATA/tcdaudio14/manifest.csv" ] && [ -f "$DATA/sisec08/manifest.csv" ]; then
  rm -rf .gpu/data && mkdir -p .gpu/data
  cp -r "$DATA/tcdaudio14" "$DATA/sisec08" .gpu/data/
  $PY benchmarks/check_scores.py --data .gpu/data --device cpu --save .gpu/cpu_scores.json
fi
du -sh .gpu
