"""FIBER (Swin-B + RoBERTa fusion backbone, FPN, DyHead, language-aware ATSS head) in a GLIP-style package.

The compiled extension ``maskrcnn_benchmark._C`` links against torch's shared libraries (``libc10.so``, ...),
which only the dynamic loader can find once ``torch`` has been imported. A finder installed here imports torch
just before ``_C`` is loaded, so ``from maskrcnn_benchmark import _C`` (or ``import maskrcnn_benchmark._C``)
works before ``import torch``, while ``import maskrcnn_benchmark`` itself stays light (no torch import).
"""

import sys
from importlib.abc import MetaPathFinder


class _TorchBeforeExtension(MetaPathFinder):
    """Imports torch when ``maskrcnn_benchmark._C`` is about to be loaded, then lets the normal finders work."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == f"{__name__}._C":
            import torch  # noqa: F401  (loads libc10.so and friends for the extension)
        return None


if not any(isinstance(finder, _TorchBeforeExtension) for finder in sys.meta_path):
    sys.meta_path.insert(0, _TorchBeforeExtension())
