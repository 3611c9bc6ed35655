"""Tests for the registry class and the model registries."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from maskrcnn_benchmark.modeling import registry as model_registry
from maskrcnn_benchmark.utils.registry import Registry

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_register_decorator_and_direct():
    reg = Registry("THINGS", cfg_key="MODEL.THING")

    @reg.register("b-thing")
    def build_b(cfg):
        return ("b", cfg)

    def build_a(cfg):
        return ("a", cfg)

    returned = reg.register("a-thing", build_a)
    assert returned is build_a
    assert reg.get("b-thing") is build_b
    assert reg["a-thing"]("x") == ("a", "x")
    assert list(reg) == ["a-thing", "b-thing"]
    assert len(reg) == 2
    assert "a-thing" in reg and "c-thing" not in reg


def test_duplicate_name_raises():
    reg = Registry("THINGS")
    reg.register("x", object())
    with pytest.raises(KeyError, match="already registered"):
        reg.register("x", object())
    with pytest.raises(KeyError, match="already registered"):
        reg.register("x")(lambda cfg: None)


def test_bad_name_type_raises():
    reg = Registry("THINGS")
    with pytest.raises(TypeError):
        reg.register("", object())
    with pytest.raises(TypeError):
        reg.register(3, object())


def test_unknown_name_message_lists_key_value_and_known_names():
    reg = Registry("BACKBONES", cfg_key="MODEL.BACKBONE.CONV_BODY")
    reg.register("Z-NET", object())
    reg.register("A-NET", object())
    with pytest.raises(KeyError) as info:
        reg.get("R-50-C4")
    msg = str(info.value)
    assert "MODEL.BACKBONE.CONV_BODY" in msg
    assert "'R-50-C4'" in msg
    assert msg.index("'A-NET'") < msg.index("'Z-NET'")  # sorted
    with pytest.raises(KeyError) as info:
        reg.get("R-50-C4", cfg_key="SOME.OTHER.KEY")
    assert "SOME.OTHER.KEY" in str(info.value)


def test_model_registries_exist_with_cfg_keys():
    assert model_registry.BACKBONES.cfg_key == "MODEL.BACKBONE.CONV_BODY"
    assert model_registry.LANGUAGE_BACKBONES.cfg_key == "MODEL.LANGUAGE_BACKBONE.MODEL_TYPE"
    assert model_registry.RPN_ARCHITECTURES.cfg_key == "MODEL.RPN_ARCHITECTURE"
    assert model_registry.META_ARCHITECTURES.cfg_key == "MODEL.META_ARCHITECTURE"
    assert model_registry.RPN_HEADS is model_registry.RPN_ARCHITECTURES
    described = model_registry.list_registries()
    assert set(described) == {"META_ARCHITECTURES", "BACKBONES", "LANGUAGE_BACKBONES", "RPN_ARCHITECTURES"}


def test_cli_lists_every_family():
    proc = subprocess.run(
        [sys.executable, "-m", "maskrcnn_benchmark.modeling.registry", "--json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = json.loads(proc.stdout)
    assert set(out["registries"]) == {"META_ARCHITECTURES", "BACKBONES", "LANGUAGE_BACKBONES", "RPN_ARCHITECTURES"}
    assert proc.returncode == (1 if out["import_errors"] else 0)
    if not out["import_errors"]:
        # the CLI must see what the model packages registered (not an empty copy of the module)
        model_registry.import_all_builders()
        for family, info in model_registry.list_registries().items():
            assert out["registries"][family]["names"] == info["names"]


def test_fiber_names_registered_once_model_is_imported():
    """Once the model packages exist, the names the FIBER configs use must resolve."""
    failures = model_registry.import_all_builders()
    assert not failures, f"model packages failed to import: {failures}"
    expected = {
        model_registry.BACKBONES: "SWINT-FPN-RETINANET",
        model_registry.LANGUAGE_BACKBONES: "roberta-fused-v2",
        model_registry.RPN_ARCHITECTURES: "VLDYHEAD",
        model_registry.META_ARCHITECTURES: "GeneralizedVLRCNN",
    }
    for reg, name in expected.items():
        assert callable(reg.get(name))
