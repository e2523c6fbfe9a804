#!/usr/bin/env bash
# The benchmark on a GPU box, in one command: installs what is missing, benchmarks doom_basic and
# CartPole with the model on the GPU and 16 rollout workers, and prints the figures.
#
#   bash scripts/benchmark_gpu.sh                 # WORKERS=16 SEC=30 by default
#   WORKERS=32 SEC=60 bash scripts/benchmark_gpu.sh
#
# Each benchmark's JSON goes to $OUT (benchmark_gpu_results/ by default); copy the printed
# figures into the README's throughput table with the GPU's name and the core count.
set -euo pipefail
cd "$(dirname "$0")/.."
WORKERS=${WORKERS:-16}
SEC=${SEC:-30}
OUT=${OUT:-benchmark_gpu_results}

if ! python -c "import sample_factory, vizdoom, torch" 2>/dev/null; then
    python -m pip install torch  # the CUDA build (the CPU-only pin is for CI)
    python -m pip install -e ".[vizdoom,atari]"
fi
python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'error: torch sees no CUDA device')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
echo "cores: $(nproc), rollout workers: $WORKERS, ${SEC}s per phase"

mkdir -p "$OUT"
for env in doom_basic CartPole-v1; do
    python -m sample_factory.benchmark --env="$env" --device=gpu --num_workers="$WORKERS" \
        --benchmark_sec="$SEC" --benchmark_warmup_sec=10 --benchmark_project_cores "$(nproc)" 64 \
        --results_file="$OUT/$env.json"
done
