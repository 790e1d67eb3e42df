#!/usr/bin/env bash
# One short GPU check: the CUDA paths of the OSSE, the OI and UNet training, with timings.
# Meant for a lent GPU machine whose Python already has torch/lightning/xarray; missing pure
# packages can be put as wheels in .whl/ beside the repo. Results go to $OUT (or ./gpu_out).
set -uo pipefail
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
PY=${PY:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then $PY -m pip install -q --no-index --no-deps .whl/*.whl 2>&1 | tail -2; fi
export OCEANLAB_HOME=/tmp/oceanlab_gpu
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
$PY - <<'PY' | tee -a "$OUT/gpu.txt"
import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())
PY
$PY bench/bench_unet.py --device cuda --steps 24 --epochs 3 --repeats 3 2>&1 | grep -v Warning | tee "$OUT/bench_unet_cuda.txt"
t=$SECONDS; $PY -m app generate --device cuda 2>&1 | tail -2; echo "generate_s=$((SECONDS - t))" | tee "$OUT/generate.txt"
for model in unet oi; do
  t=$SECONDS
  $PY -m app train --model $model --device cuda --json 2>"$OUT/${model}_cuda.err" | tee "$OUT/${model}_cuda.json"
  echo "${model}_total_s=$((SECONDS - t))" | tee -a "$OUT/${model}_cuda.json"
done
