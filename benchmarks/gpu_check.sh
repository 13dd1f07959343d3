#!/usr/bin/env bash
# The GPU measurements that issues 11 and 14 lack (benchmarks/gpu_check.py says what and why Ray-free), for a
# session whose task is lent a GPU through the device tool (its machine: Python 3.12 with torch, no pydantic, no
# Ray, no network).
#   here, once:     bash benchmarks/gpu_check.sh --prepare
#                   (pydantic's wheels for Python 3.12 and Fashion-MNIST's four files into .gpu/, which git ignores)
#   on the device:  run(command="bash benchmarks/gpu_check.sh", carry=[".gpu"], timeout_s=600)
# What it measured comes back in $OUT: gpu_check.parquet (after each part) and gpu_check.log.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --prepare ]; then
  mkdir -p .gpu/whl .gpu/data/fashion-mnist
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/whl \
    pydantic==2.14.3 pydantic-core==2.50.4 annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0 || exit 1
  src=/usr/share/datasets/fashion-mnist
  [ -f "$src/train-images-idx3-ubyte.gz" ] || src="${GANBENCH_DATA:-}/fashion-mnist"
  cp "$src"/*-ubyte.gz .gpu/data/fashion-mnist/ || { echo "no Fashion-MNIST: make data first"; exit 1; }
  du -sh .gpu
  exit 0
fi
[ -d .gpu/whl ] || { echo "error: .gpu/ missing: run 'bash benchmarks/gpu_check.sh --prepare' here and carry .gpu"; exit 2; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" GANBENCH_DATA="$PWD/.gpu/data" GANBENCH_CACHE=/tmp/ganbench-cache PYTHONUNBUFFERED=1
OUT="${OUT:-benchmarks/results}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu_check.log"
timeout 560 python3 -m benchmarks.gpu_check --out "$OUT" --minutes 8.5 2>&1 | tee -a "$OUT/gpu_check.log"
