#!/usr/bin/env bash
# Every GPU measurement of issue 13 in one go, for a session lent a GPU machine (the device
# tool runs this from the repository root; its python3 already has torch, transformers,
# safetensors and pillow, and reaches no package registry).
#
#   bash scripts/gpu_bench.sh                 # on the GPU machine; results under $OUT
#   DEVICE=cpu ARCH=tiny IMAGES=2 bash scripts/gpu_bench.sh   # smoke test anywhere
#
# Writes $OUT/gpu-bench.md (the tables for docs/benchmarks.md) and the JSON of each run.
set -euo pipefail
OUT=${OUT:-/tmp/gpu-bench}
DEVICE=${DEVICE:-cuda}
ARCH=${ARCH:-large}
IMAGES=${IMAGES:-16}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
report="$OUT/gpu-bench.md"
{
  echo "# GPU bench $(date -u '+%Y-%m-%d %H:%M UTC')"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
  echo
  echo "## Batches, float32 (scripts/bench_batch.py)"
  "$PY" scripts/bench_batch.py --device "$DEVICE" --arch "$ARCH" --images "$IMAGES" \
    --batch-images 1,4,8 --json "$OUT/batch-float32.json"
  echo
  echo "## Batches, bfloat16 vs float32 deltas"
  "$PY" scripts/bench_batch.py --device "$DEVICE" --arch "$ARCH" --images "$IMAGES" \
    --batch-images 1,8 --precision bfloat16 --compare-float32 --json "$OUT/batch-bf16.json"
  echo
  echo "## One image, paper preset, ours vs reference-style (scripts/bench.py)"
  "$PY" scripts/bench.py --device "$DEVICE" --arch "$ARCH" --preset paper \
    --reference-style --repeats 3 --json "$OUT/bench-paper.json"
} 2>&1 | tee "$report"
