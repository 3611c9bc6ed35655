"""The model registries: one per family, keyed by the config value that selects the builder.

Every builder has the signature ``build(cfg) -> nn.Module`` and is registered with upstream's string name by a
decorator next to its definition, e.g. ``@BACKBONES.register("SWINT-FPN-RETINANET")``. Registration happens
when the defining module is imported; each sub-package's ``__init__`` imports its modules explicitly, so
importing :mod:`maskrcnn_benchmark.modeling.detector` registers everything a config can name.

Families:

===================== ================================== ==================================================
registry              selected by                        FIBER value
===================== ================================== ==================================================
``META_ARCHITECTURES`` ``MODEL.META_ARCHITECTURE``         ``"GeneralizedVLRCNN"``
``BACKBONES``          ``MODEL.BACKBONE.CONV_BODY``        ``"SWINT-FPN-RETINANET"`` (Swin body + FPN)
``LANGUAGE_BACKBONES`` ``MODEL.LANGUAGE_BACKBONE.MODEL_TYPE`` ``"roberta-fused-v2"``
``RPN_ARCHITECTURES``  ``MODEL.RPN_ARCHITECTURE``          ``"VLDYHEAD"`` (the VL DyHead/ATSS module)
===================== ================================== ==================================================

``RPN_HEADS`` is another name for ``RPN_ARCHITECTURES`` (upstream spells the family of RPN modules both ways);
both names refer to the same object.

Run ``python -m maskrcnn_benchmark.modeling.registry`` to list every family and its registered names.
"""

import argparse
import importlib
import json
import logging
import sys

from maskrcnn_benchmark.utils.registry import Registry

__all__ = [
    "BACKBONES",
    "LANGUAGE_BACKBONES",
    "RPN_ARCHITECTURES",
    "RPN_HEADS",
    "META_ARCHITECTURES",
    "ALL_REGISTRIES",
    "list_registries",
]

logger = logging.getLogger(__name__)

#: Vision backbones (body + FPN). Builder: ``build(cfg) -> nn.Module`` returning the FPN-equipped backbone.
BACKBONES = Registry("BACKBONES", cfg_key="MODEL.BACKBONE.CONV_BODY")

#: Text encoders. Builder: ``build(cfg) -> nn.Module`` (upstream wraps the encoder as ``Sequential(body=...)``).
LANGUAGE_BACKBONES = Registry("LANGUAGE_BACKBONES", cfg_key="MODEL.LANGUAGE_BACKBONE.MODEL_TYPE")

#: Dense heads with their anchor generator, loss and post-processor. Builder: ``build(cfg) -> nn.Module``.
RPN_ARCHITECTURES = Registry("RPN_ARCHITECTURES", cfg_key="MODEL.RPN_ARCHITECTURE")

#: Alias of :data:`RPN_ARCHITECTURES` (same object).
RPN_HEADS = RPN_ARCHITECTURES

#: Whole detectors. Builder: ``build(cfg) -> nn.Module`` (e.g. the ``GeneralizedVLRCNN`` class itself).
META_ARCHITECTURES = Registry("META_ARCHITECTURES", cfg_key="MODEL.META_ARCHITECTURE")

ALL_REGISTRIES: dict[str, Registry] = {
    "META_ARCHITECTURES": META_ARCHITECTURES,
    "BACKBONES": BACKBONES,
    "LANGUAGE_BACKBONES": LANGUAGE_BACKBONES,
    "RPN_ARCHITECTURES": RPN_ARCHITECTURES,
}

# Packages whose import registers every builder (each imports its own modules in its __init__).
_REGISTERING_PACKAGES = (
    "maskrcnn_benchmark.modeling.backbone",
    "maskrcnn_benchmark.modeling.language_backbone",
    "maskrcnn_benchmark.modeling.rpn",
    "maskrcnn_benchmark.modeling.detector",
)


def import_all_builders() -> dict[str, str]:
    """Import every registering package so all builders are registered.

    Returns:
        ``{package: error message}`` for packages that failed to import (empty when all imported).
    """
    failures = {}
    for package in _REGISTERING_PACKAGES:
        try:
            importlib.import_module(package)
        except ImportError as e:
            failures[package] = f"{type(e).__name__}: {e}"
            logger.warning("could not import %s: %s", package, e)
    return failures


def list_registries() -> dict[str, dict[str, object]]:
    """Describe every registry: ``{family: {"cfg_key": str, "names": [str, ...]}}`` (names sorted)."""
    return {
        family: {"cfg_key": registry.cfg_key, "names": list(registry)}
        for family, registry in ALL_REGISTRIES.items()
    }


def main(argv: list[str] | None = None) -> int:
    """Print every registry family with its config key and registered names."""
    parser = argparse.ArgumentParser(description="List the model registries and their registered names.")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    failures = import_all_builders()
    # Under ``python -m`` this file runs as ``__main__``, a second copy of the module whose registries nobody
    # registers into; describe the registries of the imported module instead.
    canonical = importlib.import_module("maskrcnn_benchmark.modeling.registry")
    described = canonical.list_registries()
    if args.json:
        sys.stdout.write(json.dumps({"registries": described, "import_errors": failures}, indent=2) + "\n")
    else:
        lines = []
        for family, info in described.items():
            lines.append(f"{family} (selected by {info['cfg_key']}):")
            names = info["names"] or ["(none)"]
            lines.extend(f"  {name}" for name in names)
        for package, error in failures.items():
            lines.append(f"import of {package} failed: {error}")
        sys.stdout.write("\n".join(lines) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
