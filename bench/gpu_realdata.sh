#!/usr/bin/env bash
# The device job behind bench/results/gpu_realdata.json: two lanes, one per H200 (nvidia-h200-x2),
# each part a sequence of fresh processes (bench/realdata_bench.py). Usage, from the repo root:
#   bash bench/gpu_realdata.sh "lora8b" "dpo8b"        # lane 0 parts, lane 1 parts
# Needs the wheels the GPU image lacks in .wheels/ (trl, bitsandbytes, liger-kernel, datasets, dill,
# multiprocess) and the embedded tokenizer's files in .wheels/tok49k/.
set -u
START=$(date +%s); LIMIT=${LIMIT:-570}  # seconds the whole job may take (the device call's limit, less a margin)
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .wheels/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 STUDIO_GPU_TOKENIZER_DIR=$PWD/.wheels/tok49k BENCH_WORK=/tmp/studio-bench
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader
python3 -c "import torch, inspect; from torch.nn.attention import varlen; print(torch.__version__, inspect.signature(varlen.varlen_attn))"
python3 -c "import logging; logging.basicConfig(level=logging.INFO); from studio import varlen; print('varlen available:', varlen.available())"
python3 bench/realdata_bench.py --build 49152 > "$OUT/build.log" 2>&1 || { tail -20 "$OUT/build.log"; exit 1; }
run_lane() {  # run_lane GPU PARTS: bench parts, then "tests" (the packed-rows GPU tests) in the time left
  local gpu=$1 parts=$2 bench
  bench=$(echo ",$parts," | sed 's/,tests,/,/; s/^,//; s/,$//')
  local contexts="BENCH_CONTEXTS_$gpu"  # a lane's own context lengths, e.g. BENCH_CONTEXTS_1=90112,98304
  [ -n "${!contexts:-}" ] && export BENCH_CONTEXTS=${!contexts}
  local down="BENCH_STEP_DOWN_$gpu"; [ -n "${!down:-}" ] && export BENCH_STEP_DOWN=${!down}
  local extra="LANE_ENV_$gpu"; [ -n "${!extra:-}" ] && export ${!extra}  # e.g. LANE_ENV_0="STUDIO_MLP_CHUNK=0"
  [ -n "$bench" ] && CUDA_VISIBLE_DEVICES=$gpu python3 bench/realdata_bench.py --parts "$bench" --out "$OUT/lane$gpu.json" > "$OUT/lane$gpu.log" 2>&1
  local left=$((LIMIT - ($(date +%s) - START) - 5))
  if [[ ",$parts," == *",tests,"* ]] && [ $left -gt 30 ]; then
    CUDA_VISIBLE_DEVICES=$gpu timeout $left python3 -m pytest tests/gpu/test_fast_path.py -k packed -q -p no:cacheprovider > "$OUT/tests$gpu.log" 2>&1
  fi
}
export BENCH_SECONDS=$((LIMIT - ($(date +%s) - START)))
lane=0
for parts in "$@"; do
  run_lane $lane "$parts" &
  lane=$((lane + 1))
done
wait
for f in "$OUT"/tests*.log; do [ -f "$f" ] && { echo "== $f"; tail -8 "$f"; }; done
for f in "$OUT"/lane*.log; do echo "== $f"; grep -v "it/s\]" "$f" | tail -25; done
