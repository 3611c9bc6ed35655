"""Checkpoint reading, the explicit key map, load reports and the atomic checkpointer."""

import argparse
import json
import os
import re
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

from maskrcnn_benchmark.utils import checkpoint as ckpt_mod
from maskrcnn_benchmark.utils.atomic_io import atomic_torch_save, atomic_write_text
from maskrcnn_benchmark.utils.checkpoint import (
    CheckpointMismatchError,
    DetectronCheckpointer,
    UnsafeCheckpointError,
    load_checkpoint,
    load_checkpoint_file,
)
from maskrcnn_benchmark.utils.key_map import FILE_KINDS, SWIN_BODY, TEXT_BODY, detect_file_kind, map_key
from maskrcnn_benchmark.utils.model_serialization import (
    group_keys,
    load_state_dict,
    plan_state_dict_load,
    resize_relative_position_bias_table,
)

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "upstream-state-dict"


def _fixture(name):
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(f"upstream state-dict fixture {path.resolve()} is absent")
    return json.loads(path.read_text())


def _shapes(fixture):
    return OrderedDict((k, tuple(s)) for k, s, _ in fixture["entries"])


# ---------------------------------------------------------------------------------------------------
# Synthetic upstream files (key names and shapes derived from the fixtures)
# ---------------------------------------------------------------------------------------------------

COARSE_EXTRAS = {
    "mlm_score.bias": (50265,), "mlm_score.transform.dense.weight": (768, 768),
    "mlm_score.transform.LayerNorm.weight": (768,), "mlm_score.decoder.weight": (50265, 768),
    "itm_score.fc.weight": (2, 1536), "itm_score.fc.bias": (2,), "rank_output.weight": (1, 768),
    "cross_modal_text_transform.weight": (768, 768), "cross_modal_image_transform.weight": (768, 1024),
    "cross_modal_image_pooler.dense.weight": (768, 768), "cross_modal_text_pooler_itc.dense.bias": (768,),
    "temp": (), "image_queue": (768, 4096), "queue_ptr": (1,),
    "text_transformer.pooler.dense.weight": (768, 768),
    "vit_model.norm.weight": (1024,), "vit_model.norm.bias": (1024,),
}


def coarse_file_from(fixture):
    """Key/shape layout of a coarse-stage file holding the same Swin/RoBERTa as ``fixture`` (v3-shaped)."""
    out = OrderedDict()
    for key, shape in _shapes(fixture).items():
        if key.startswith(SWIN_BODY) and not re.match(re.escape(SWIN_BODY) + r"norm\d", key):
            out["vit_model." + key[len(SWIN_BODY):]] = shape
        elif key.startswith(TEXT_BODY):
            out["text_transformer." + key[len(TEXT_BODY):]] = shape
    for layer in range(6):  # the coarse RoBERTa has a gate in every layer
        out[f"text_transformer.encoder.layer.{layer}.alpha_t2i"] = (1,)
    for layer in range(6, 12):
        out[f"text_transformer.encoder.layer.{layer}.crossattention_t2i.output.LayerNorm.weight"] = (768,)
    out["vit_model.layers.2.blocks.1.attn_mask"] = (35, 144, 144)
    out.update(COARSE_EXTRAS)
    return out


def test_detect_file_kind():
    assert detect_file_kind(["fusion_backbone.x", "rpn.y"]).name == "training"
    assert detect_file_kind(["vit_model.layers.0.x", "temp"]).name == "coarse"
    assert detect_file_kind(["patch_embed.proj.weight", "layers.0.blocks.0.norm1.weight", "head.weight"]).name == "swin"
    assert detect_file_kind(["roberta.embeddings.word_embeddings.weight", "lm_head.bias"]).name == "roberta"
    bare_roberta = ["embeddings.word_embeddings.weight", "encoder.layer.0.output.dense.bias"]
    assert detect_file_kind(bare_roberta).name == "roberta"
    assert detect_file_kind(["backbone.body.stem.conv1.weight"]) is None


def test_every_rule_of_every_kind_is_exercised():
    """Each documented rule maps (or drops) at least one key of a realistic file, and maps it as documented."""
    examples = {
        "training": ["fusion_backbone.backbone.body.patch_embed.proj.weight", "rpn.head.bias0"],
        "coarse": ["vit_model.norm.weight", "vit_model.head.weight", "vit_model.absolute_pos_embed",
                   "vit_model.layers.1.blocks.1.attn_mask", "vit_model.layers.0.blocks.0.attn.qkv.weight",
                   "text_transformer.pooler.dense.weight",
                   "text_transformer.encoder.layer.7.crossattention_t2i.output.LayerNorm.bias",
                   "text_transformer.embeddings.token_type_ids", "text_transformer.encoder.layer.0.alpha_t2i",
                   "mlm_score.decoder.weight"],
        "swin": ["head.weight", "norm.bias", "absolute_pos_embed", "layers.0.blocks.1.attn_mask",
                 "patch_embed.proj.weight"],
        "roberta": ["lm_head.dense.weight", "roberta.pooler.dense.weight", "roberta.embeddings.token_type_ids",
                    "roberta.encoder.layer.3.output.dense.weight", "embeddings.LayerNorm.weight"],
    }
    for name, kind in FILE_KINDS.items():
        used = {map_key(kind, key)[0] for key in examples[name]}
        assert used == set(kind.rules), f"{name}: rules without an example: {set(kind.rules) - used}"
    assert map_key(FILE_KINDS["coarse"], "vit_model.layers.2.blocks.14.attn.qkv_text_i2t.weight")[1] == (
        SWIN_BODY + "layers.2.blocks.14.attn.qkv_text_i2t.weight")
    assert map_key(FILE_KINDS["coarse"], "text_transformer.encoder.layer.6.crossattention_t2i.self.key.weight")[1] == (
        TEXT_BODY + "encoder.layer.6.crossattention_t2i.self.key.weight")
    # "norm." is only dropped at the top level, not inside a stage.
    assert map_key(FILE_KINDS["swin"], "layers.2.downsample.norm.weight")[1] == (
        SWIN_BODY + "layers.2.downsample.norm.weight")
    assert map_key(FILE_KINDS["roberta"], "roberta.embeddings.word_embeddings.weight")[1] == (
        TEXT_BODY + "embeddings.word_embeddings.weight")
    assert map_key(FILE_KINDS["roberta"], "encoder.layer.0.attention.self.query.bias")[1] == (
        TEXT_BODY + "encoder.layer.0.attention.self.query.bias")
    # Nothing is matched by suffix: an unknown prefix stays unmatched.
    assert map_key(FILE_KINDS["coarse"], "foo.vit_model.layers.0.x") == (None, None)


@pytest.mark.parametrize("target_fixture", ["coco_finetune_v2.json", "refcoco_v3.json"])
def test_coarse_file_into_fine_model_fixture(target_fixture):
    """A coarse-stage (v3-shaped) file fills every Swin/RoBERTa key; the rest is listed as expected."""
    model = _shapes(_fixture(target_fixture))
    file_shapes = coarse_file_from(_fixture("refcoco_v3.json"))
    report = plan_state_dict_load(file_shapes, model, source="fiber_coarse_init.pt").report
    assert report.kind == "coarse"
    assert report.missing == [] and report.unexpected == [] and report.shape_mismatch == []
    expected_missing = {k for k in model if k.startswith(("fusion_backbone.backbone.fpn.", "rpn."))
                        or re.match(re.escape(SWIN_BODY) + r"norm\d\.", k)}
    assert set(report.expected_missing) == expected_missing
    assert set(report.loaded) == set(model) - expected_missing
    unused = {k for k, _ in report.expected_unused}
    assert set(COARSE_EXTRAS) <= unused
    norm_i2t = {k for k in file_shapes if "norm_i2t_i" in k}
    assert len(norm_i2t) == 12
    if "v2" in target_fixture:
        assert norm_i2t <= unused  # the v2 model has no norm_i2t_i: dropped as upstream does, but reported
        assert any("v3-only" in why for k, why in report.expected_unused if "norm_i2t_i" in k)
    else:
        assert not norm_i2t & unused
    text = report.format()
    assert "fusion_backbone.backbone.fpn" in text and "mlm_score" in text


def test_training_file_v3_into_v2_and_back():
    v2, v3 = _shapes(_fixture("coco_finetune_v2.json")), _shapes(_fixture("refcoco_v3.json"))
    report = plan_state_dict_load(v3, v2, source="fiber_refcoco.pth").report
    assert len(report.unexpected) == 12 and all("norm_i2t_i" in k for k in report.unexpected)
    assert report.missing == [] and not report.is_clean
    assert any("FUSION_VERSION v3" in h for h in report.hints())
    assert "layers.2.blocks.{14, 15, 16, 17}.attn.norm_i2t_i.{bias, weight}" in report.format()
    back = plan_state_dict_load(v2, v3).report
    assert len(back.missing) == 12 and any("FUSION_VERSION v2" in h for h in back.hints())
    same = plan_state_dict_load(v2, v2).report
    assert same.is_clean and len(same.loaded) == len(v2) == 806


def test_swin_imagenet_file_window7_resized_into_fixture():
    model = _shapes(_fixture("coco_finetune_v2.json"))
    file_shapes = OrderedDict()
    for key, shape in model.items():
        if not key.startswith(SWIN_BODY) or re.search(r"_i2t|body\.norm\d\.", key):
            continue
        rest = key[len(SWIN_BODY):]
        if rest.endswith("relative_position_bias_table"):
            shape = (169, shape[1])  # window 7
        if rest.endswith("relative_position_index"):
            shape = (49, 49)
        file_shapes[rest] = shape
    file_shapes.update({"norm.weight": (1024,), "norm.bias": (1024,), "head.weight": (21841, 1024),
                        "head.bias": (21841,)})
    report = plan_state_dict_load(file_shapes, model, source="swin_base_patch4_window7_224_22k.pth").report
    assert report.kind == "swin" and report.missing == [] and report.unexpected == []
    assert report.shape_mismatch == []
    assert len(report.resized) == 24 and len(report.kept_model_buffers) == 24
    assert {k for k, _ in report.expected_unused} == {"norm.weight", "norm.bias", "head.weight", "head.bias"}
    assert not any(k.startswith(SWIN_BODY) and "_i2t" not in k and not re.search(r"body\.norm\d", k)
                   for k in report.expected_missing)


@pytest.mark.parametrize("prefix", ["roberta.", ""])
def test_roberta_base_file_into_fixture(prefix):
    model = _shapes(_fixture("coco_finetune_v2.json"))
    file_shapes = OrderedDict(
        (prefix + k[len(TEXT_BODY):], s) for k, s in model.items()
        if k.startswith(TEXT_BODY) and "crossattention_t2i" not in k and "alpha_t2i" not in k)
    file_shapes[prefix + "pooler.dense.weight"] = (768, 768)
    if prefix:
        file_shapes["lm_head.decoder.weight"] = (50265, 768)
    report = plan_state_dict_load(file_shapes, model).report
    assert report.kind == "roberta" and report.is_clean
    assert len(report.loaded) == len(file_shapes) - (2 if prefix else 1)
    assert all(k.startswith(TEXT_BODY) for k in report.loaded)
    assert {k for k in report.expected_missing if k.startswith(TEXT_BODY)} == {
        k for k in model if k.startswith(TEXT_BODY) and ("crossattention_t2i" in k or "alpha_t2i" in k)}


def test_group_keys():
    keys = [f"a.layers.2.blocks.{b}.attn.norm_i2t_i.{w}" for b in (14, 15, 16, 17) for w in ("weight", "bias")]
    keys += ["a.fpn.fpn_inner2.weight", "a.fpn.fpn_inner2.bias", "top"]
    assert group_keys(keys) == ["a.fpn.fpn_inner2.{bias, weight}",
                                "a.layers.2.blocks.{14, 15, 16, 17}.attn.norm_i2t_i.{bias, weight}", "top"]


# ---------------------------------------------------------------------------------------------------
# Real tensors: a module with every upstream key (tiny shapes)
# ---------------------------------------------------------------------------------------------------


def _small(shape, variant=0):
    return tuple(min(d, 3 + variant) if i == 0 else min(d, 2) for i, d in enumerate(shape))


def module_from_fixture(fixture, variant=0, seed=0):
    """An nn.Module whose state-dict keys (and buffer-ness, dtypes) are upstream's, with tiny tensors."""
    gen = torch.Generator().manual_seed(seed)
    buffers = set(fixture["buffers"])
    root = nn.Module()
    for key, shape, dtype in fixture["entries"]:
        *path, leaf = key.split(".")
        mod = root
        for part in path:
            if part not in mod._modules:
                mod.add_module(part, nn.Module())
            mod = mod._modules[part]
        shape = _small(shape, variant)
        if key in buffers:
            value = torch.arange(int(torch.tensor(shape).prod()) if shape else 1).reshape(shape)
            mod.register_buffer(leaf, value.to(getattr(torch, dtype)))
        else:
            mod.register_parameter(leaf, nn.Parameter(torch.randn(shape, generator=gen)))
    return root


def _assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=0, msg=key)


def test_upstream_training_checkpoint_with_module_prefix_and_ema(tmp_path):
    fixture = _fixture("coco_finetune_v2.json")
    src = module_from_fixture(fixture, seed=1)
    ema = module_from_fixture(fixture, seed=2)
    data = {"model": OrderedDict(("module." + k, v) for k, v in src.state_dict().items()),
            "model_ema": OrderedDict(("module." + k, v) for k, v in ema.state_dict().items()),
            "optimizer": {"state": {}, "param_groups": []}, "scheduler": {"last_epoch": 7}, "iteration": 7}
    path = tmp_path / "fiber_coco.pth"
    torch.save(data, path)

    model = module_from_fixture(fixture, seed=3)
    extras = DetectronCheckpointer(None, model).load(str(path))
    _assert_same_weights(model, src)
    assert extras["iteration"] == 7

    model = module_from_fixture(fixture, seed=3)
    report = load_checkpoint(model, str(path), use_ema=True, strict=True)
    assert report.is_clean and report.missing == [] and len(report.loaded) == 806
    _assert_same_weights(model, ema)


def test_coarse_checkpoint_tensors_into_v2_model(tmp_path):
    v2, v3 = _fixture("coco_finetune_v2.json"), _fixture("refcoco_v3.json")
    src = module_from_fixture(v3, seed=4).state_dict()
    coarse = OrderedDict()
    for key, value in src.items():
        if key.startswith(SWIN_BODY) and not re.match(re.escape(SWIN_BODY) + r"norm\d", key):
            coarse["vit_model." + key[len(SWIN_BODY):]] = value
        elif key.startswith(TEXT_BODY):
            coarse["text_transformer." + key[len(TEXT_BODY):]] = value
    coarse["mlm_score.bias"] = torch.zeros(5)
    coarse["itm_score.fc.weight"] = torch.zeros(2, 3)
    coarse["text_transformer.encoder.layer.0.alpha_t2i"] = torch.zeros(1)
    path = tmp_path / "fiber_coarse_init.pt"
    torch.save({"state_dict": coarse, "epoch": 3}, path)

    model = module_from_fixture(v2, seed=5)
    fpn_before = model.state_dict()["fusion_backbone.backbone.fpn.fpn_inner2.weight"].clone()
    report = load_checkpoint(model, str(path))
    assert report.kind == "coarse" and report.missing == [] and report.unexpected == []
    got = model.state_dict()
    torch.testing.assert_close(got[SWIN_BODY + "layers.2.blocks.14.attn.qkv_i2t.weight"],
                               src[SWIN_BODY + "layers.2.blocks.14.attn.qkv_i2t.weight"])
    gate = TEXT_BODY + "encoder.layer.11.alpha_t2i"
    torch.testing.assert_close(got[gate], src[gate])
    torch.testing.assert_close(got["fusion_backbone.backbone.fpn.fpn_inner2.weight"], fpn_before)
    # Strict mode accepts a coarse file: everything left over is expected for that kind.
    load_checkpoint(module_from_fixture(v2, seed=5), str(path), strict=True)


def test_wrong_shape_tensor_is_reported_not_loaded(tmp_path, caplog):
    fixture = _fixture("coco_finetune_v2.json")
    src = module_from_fixture(fixture, seed=1).state_dict()
    bad_key = "rpn.head.dot_product_projection_text.weight"
    src[bad_key] = torch.randn(7, 2)
    path = tmp_path / "x.pth"
    torch.save({"model": src}, path)
    model = module_from_fixture(fixture, seed=9)
    before = model.state_dict()[bad_key].clone()
    with caplog.at_level("WARNING"):
        report = load_checkpoint(model, str(path))
    assert [k for k, _, _ in report.shape_mismatch] == [bad_key]
    assert report.shape_mismatch[0][1:] == ((7, 2), tuple(before.shape))
    torch.testing.assert_close(model.state_dict()[bad_key], before)
    torch.testing.assert_close(model.state_dict()["rpn.head.bias0"], src["rpn.head.bias0"])
    assert bad_key in caplog.text and "NOT loaded" in caplog.text
    with pytest.raises(CheckpointMismatchError, match=re.escape(bad_key)):
        load_checkpoint(module_from_fixture(fixture), str(path), strict=True)


def test_other_architecture_gives_clear_report(tmp_path):
    fixture = _fixture("coco_finetune_v2.json")
    other = module_from_fixture(fixture, variant=2)  # "a different tiny": same keys, other widths
    path = tmp_path / "other.pth"
    torch.save({"model": other.state_dict()}, path)
    with pytest.raises(CheckpointMismatchError, match="differ in shape"):
        load_checkpoint(module_from_fixture(fixture), str(path), strict=True)
    # A file of a foreign model (no key maps): always an error, even without strict.
    torch.save({"model": {"backbone.body.stem.conv1.weight": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointMismatchError, match="no tensor"):
        load_checkpoint(module_from_fixture(fixture), str(path))


def test_derived_buffers_keep_model_values(tmp_path):
    """Upstream's EMA drifts integer index buffers; the model's (correct) values are kept and reported."""
    fixture = _fixture("coco_finetune_v2.json")
    src = module_from_fixture(fixture, seed=1).state_dict()
    key = SWIN_BODY + "layers.0.blocks.0.attn.relative_position_index"
    src[key] = src[key] + 1
    model = module_from_fixture(fixture, seed=2)
    before = model.state_dict()[key].clone()
    report = load_state_dict(model, src)
    assert report.kept_model_buffers == [key] and report.is_clean
    assert torch.equal(model.state_dict()[key], before)


def test_relative_position_bias_resize():
    table = torch.arange(9 * 2, dtype=torch.float32).reshape(9, 2)
    torch.testing.assert_close(resize_relative_position_bias_table(table, 9), table)
    const = torch.full((169, 4), 0.25)
    torch.testing.assert_close(resize_relative_position_bias_table(const, 529), torch.full((529, 4), 0.25))

    class Attn(nn.Module):
        def __init__(self, rows):
            super().__init__()
            self.relative_position_bias_table = nn.Parameter(torch.zeros(rows, 4))

    model = nn.Module()
    model.add_module("fusion_backbone", nn.Module())
    model.fusion_backbone.add_module("attn", Attn(529))
    report = load_state_dict(model, {"fusion_backbone.attn.relative_position_bias_table": const})
    assert len(report.resized) == 1 and report.is_clean
    torch.testing.assert_close(model.fusion_backbone.attn.relative_position_bias_table.data, torch.full((529, 4), 0.25))


def test_safetensors_roberta_file(tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    fixture = _fixture("coco_finetune_v2.json")
    model = module_from_fixture(fixture, seed=0)
    own = model.state_dict()
    text = {"roberta." + k[len(TEXT_BODY):]: torch.randn(v.shape) for k, v in own.items()
            if k.startswith(TEXT_BODY) and v.dtype == torch.float32 and "t2i" not in k}
    text["lm_head.bias"] = torch.zeros(3)
    path = tmp_path / "model.safetensors"
    safetensors.save_file(text, str(path))
    report = load_checkpoint(model, str(path), strict=True)
    assert report.kind == "roberta" and len(report.loaded) == len(text) - 1
    key = TEXT_BODY + "encoder.layer.3.attention.self.query.weight"
    torch.testing.assert_close(model.state_dict()[key], text["roberta.encoder.layer.3.attention.self.query.weight"])


# ---------------------------------------------------------------------------------------------------
# File safety and the checkpointer
# ---------------------------------------------------------------------------------------------------


def test_missing_file_and_url():
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_checkpoint_file("/tmp/definitely/nope.pth")
    with pytest.raises(ValueError, match="no network"):
        load_checkpoint_file("https://example.com/x.pth")


def test_pickle_only_file_is_refused_and_convertible(tmp_path):
    path = tmp_path / "old.pth"
    torch.save({"model": {"rpn.head.bias0": torch.ones(1)}, "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint_file(str(path))
    message = str(info.value)
    assert "pickle" in message and "weights_only" in message and "convert" in message and str(path) in message
    out = tmp_path / "old_safe.pth"
    assert ckpt_mod.main(["convert", str(path), str(out)]) == 0
    data = load_checkpoint_file(str(out))
    assert torch.equal(data["model"]["rpn.head.bias0"], torch.ones(1)) and "args" not in data


def _file(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_files_that_are_no_torch_checkpoint_say_so(tmp_path):
    import io
    import pickle
    import random

    rng = random.Random(0)
    cases = [("random.pth", bytes(rng.getrandbits(8) for _ in range(4096)), "neither a torch zip archive"),
             ("empty.pth", b"", "the file is empty"),
             ("plain.pkl.pth", pickle.dumps({"model": {"a": 1}}, protocol=4), "a plain Python pickle"),
             ("config.pth", b'{"MODEL": {}}', "it looks like JSON text"),
             ("text.pth", b"hello world\n", "neither a torch zip archive")]
    buffer = io.BytesIO()
    torch.save({"model": {"a": torch.zeros(3)}}, buffer)
    good = buffer.getvalue()
    cases.append(("truncated.pth", good[: len(good) // 2], "the file is damaged: RuntimeError"))
    for name, data, reason in cases:
        path = _file(tmp_path, name, data)
        with pytest.raises(ValueError, match=f"{re.escape(path)}: not a readable torch checkpoint.*{reason}") as info:
            load_checkpoint_file(path)
        assert not isinstance(info.value, UnsafeCheckpointError) and "\x1b" not in str(info.value)
    with pytest.raises(ValueError, match="is a directory, not a checkpoint file"):
        load_checkpoint_file(str(tmp_path))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_damaged_torch_files_never_escape_as_library_errors(tmp_path):
    import io
    import random

    buffers = []
    for zipped in (True, False):
        buffer = io.BytesIO()
        torch.save({"model": {"a": torch.arange(6.0)}}, buffer, _use_new_zipfile_serialization=zipped)
        buffers.append(buffer.getvalue())
    rng = random.Random(1)
    outcomes = set()
    for trial in range(120):
        data = bytearray(buffers[trial % 2])
        for _ in range(rng.choice([1, 3, 10])):
            data[rng.randrange(len(data))] = rng.randrange(256)
        path = _file(tmp_path, "damaged.pth", bytes(data))
        try:
            load_checkpoint_file(path)
            outcomes.add("loaded")
        except ValueError as e:  # UnsafeCheckpointError is a ValueError
            assert str(e).startswith(f"{path}: ") and "\x1b" not in str(e), str(e)
            outcomes.add(type(e).__name__)
    assert "ValueError" in outcomes


def test_unsafe_refusal_keeps_its_convert_command_and_has_no_ansi_codes(tmp_path, capsys):
    from maskrcnn_benchmark.utils.cli_errors import report_user_errors

    path = tmp_path / "with_module.pth"
    torch.save({"model": {"a": torch.zeros(1)}, "net": nn.Linear(1, 1)}, path)
    with pytest.raises(UnsafeCheckpointError, match="needs the Python object torch.nn.modules.linear.Linear"):
        load_checkpoint_file(str(path))
    assert report_user_errors(lambda: ckpt_mod.main(["inspect", str(path)])) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and err.startswith(f"error: UnsafeCheckpointError: {path}: refused to load")
    assert f"checkpoint convert {path} {tmp_path / 'with_module_safe.pth'}" in err
    random_bytes = _file(tmp_path, "random.pth", bytes(range(256)) * 4)
    assert report_user_errors(lambda: ckpt_mod.main(["inspect", random_bytes])) == 2
    assert capsys.readouterr().err.startswith(f"error: ValueError: {random_bytes}: not a readable torch checkpoint")
    assert report_user_errors(lambda: ckpt_mod.main(["convert", random_bytes, str(tmp_path / "o.pth")])) == 2
    assert "not a readable torch checkpoint" in capsys.readouterr().err


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fusion_backbone = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))


def _trained(seed=0):
    torch.manual_seed(seed)
    model = _Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, 2, 0.5)
    for _ in range(3):
        opt.zero_grad()
        model.fusion_backbone(torch.randn(5, 4)).pow(2).sum().backward()
        opt.step()
        sched.step()
    return model, opt, sched


def test_save_load_round_trip_and_resume(tmp_path):
    model, opt, sched = _trained()
    wrapped = nn.Module()
    wrapped.module = model  # like DDP: saved keys must not carry "module."
    ckpt = DetectronCheckpointer(None, wrapped, opt, sched, save_dir=str(tmp_path))
    path = ckpt.save("model_0000003", iteration=3, best_metric=0.5)
    assert os.path.basename(path) == "model_0000003.pth"
    raw = load_checkpoint_file(path)
    assert set(raw["model"]) == set(model.state_dict()) and not any(k.startswith("module.") for k in raw["model"])
    expected_draws = torch.rand(3)  # what the RNG gives right after saving

    torch.manual_seed(123)
    fresh = _Net()
    fopt = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    fsched = torch.optim.lr_scheduler.StepLR(fopt, 2, 0.5)
    resumer = DetectronCheckpointer(None, fresh, fopt, fsched, save_dir=str(tmp_path))
    assert resumer.has_checkpoint() and resumer.get_checkpoint_file() == path
    extras = resumer.load()  # auto-resume from last_checkpoint
    assert extras["iteration"] == 3 and extras["best_metric"] == 0.5
    _assert_same_weights(fresh, model)
    assert fopt.state_dict()["param_groups"] == opt.state_dict()["param_groups"]
    for a, b in zip(fopt.state_dict()["state"].values(), opt.state_dict()["state"].values()):
        torch.testing.assert_close(a["momentum_buffer"], b["momentum_buffer"], rtol=0, atol=0)
    assert fsched.state_dict() == sched.state_dict()
    # The RNG states wait for the training loop (it restores them once its data-loader iterator exists).
    assert not torch.equal(torch.rand(3), expected_draws)
    resumer.state.restore_rng()
    torch.testing.assert_close(torch.rand(3), expected_draws, rtol=0, atol=0)

    # Loading an explicit file does not restore the optimizer unless resume=True.
    other = _Net()
    oopt = torch.optim.SGD(other.parameters(), lr=0.7)
    DetectronCheckpointer(None, other, oopt).load(path)
    assert oopt.param_groups[0]["lr"] == 0.7
    _assert_same_weights(other, model)


def test_save_with_ema_and_scaler_and_load_ema(tmp_path):
    model, opt, _ = _trained()

    class Ema:
        def __init__(self):
            self.module = _Net()

        def state_dict(self):
            return self.module.state_dict()

        def load_state_dict(self, sd):
            self.module.load_state_dict(sd)

    ema = Ema()
    scaler = torch.amp.GradScaler("cpu", init_scale=4.0)
    ckpt = DetectronCheckpointer(None, model, opt, save_dir=str(tmp_path), ema=ema, scaler=scaler)
    path = ckpt.save("model_final", iteration=9)
    data = load_checkpoint_file(path)
    assert {"model", "model_ema", "optimizer", "scaler", "iteration", "rng_state"} <= set(data)
    target = _Net()
    DetectronCheckpointer(None, target).load(path, use_ema=True)
    _assert_same_weights(target, ema.module)
    ema2 = Ema()
    scaler2 = torch.amp.GradScaler("cpu", init_scale=1.0)
    extras = DetectronCheckpointer(None, _Net(), torch.optim.SGD(_Net().parameters(), lr=1), ema=ema2,
                                   scaler=scaler2).load(path, resume=True, skip_optimizer=False)
    _assert_same_weights(ema2.module, ema.module)
    assert scaler2.get_scale() == 4.0 and extras["iteration"] == 9 and "model_ema" in extras


def test_crash_during_save_keeps_old_file(tmp_path, monkeypatch):
    model, opt, sched = _trained()
    ckpt = DetectronCheckpointer(None, model, opt, sched, save_dir=str(tmp_path))
    path = ckpt.save("model_final", iteration=1)
    good = open(path, "rb").read()
    pointer = (tmp_path / "last_checkpoint").read_text()
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        f.write(b"PARTIAL" * 100)  # half a file, then the process "dies"
        raise KeyboardInterrupt("killed during save")

    monkeypatch.setattr(torch, "save", dying_save)
    with torch.no_grad():
        model.fusion_backbone[0].weight.add_(1.0)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save("model_final", iteration=2)
    monkeypatch.setattr(torch, "save", real_save)
    assert open(path, "rb").read() == good
    assert (tmp_path / "last_checkpoint").read_text() == pointer
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_final.pth"]
    assert load_checkpoint_file(path)["iteration"] == 1


def test_last_checkpoint_pointer_survives_moving_the_folder(tmp_path):
    model, _, _ = _trained()
    ckpt = DetectronCheckpointer(None, model, save_dir=str(tmp_path / "a"))
    ckpt.save("model_0000001")
    ckpt.save("model_0000002")
    assert ckpt.get_checkpoint_file().endswith("model_0000002.pth")
    os.rename(tmp_path / "a", tmp_path / "b")
    moved = DetectronCheckpointer(None, model, save_dir=str(tmp_path / "b"))
    assert moved.get_checkpoint_file() == str(tmp_path / "b" / "model_0000002.pth")
    assert not DetectronCheckpointer(None, model, save_dir=str(tmp_path / "c")).has_checkpoint()
    assert DetectronCheckpointer(None, model, save_dir=str(tmp_path / "c")).load(None) == {}


# ---------------------------------------------------------------------------------------------------
# Our real model: FIBER-B on the meta device (keys/shapes) and the tiny config (tensors)
# ---------------------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


def _config(name, *opts):
    from maskrcnn_benchmark.config import load_config

    path = REPO / "configs" / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return load_config(str(path), list(opts))


def _meta_shapes(config_name):
    from maskrcnn_benchmark.modeling.detector import build_detection_model

    with torch.device("meta"):
        model = build_detection_model(_config(config_name))
    return OrderedDict((k, tuple(v.shape)) for k, v in model.state_dict().items())


@pytest.mark.parametrize("config_name,fixture_name", [
    ("e2e_dyhead_SwinT_B_FPN_coco_finetuning_fusion_backbone.yaml", "coco_finetune_v2.json"),
    ("refcoco.yaml", "refcoco_v3.json"),
])
def test_released_checkpoint_layouts_fit_our_fiber_b(config_name, fixture_name):
    """An upstream training checkpoint (keys/shapes of the fixture) loads into OUR FIBER-B with a clean report;
    a coarse-stage file leaves only the FPN/head/output norms missing, all of them expected."""
    model = _meta_shapes(config_name)
    fixture = _fixture(fixture_name)
    report = plan_state_dict_load(_shapes(fixture), model, source=fixture_name).report
    assert report.is_clean and len(report.loaded) == fixture["num_keys"] == len(model)
    coarse = plan_state_dict_load(coarse_file_from(_fixture("refcoco_v3.json")), model).report
    assert coarse.missing == [] and coarse.unexpected == [] and coarse.shape_mismatch == []
    assert all(k.startswith(("fusion_backbone.backbone.fpn.", "rpn.", SWIN_BODY + "norm"))
               for k in coarse.expected_missing)


@pytest.fixture(scope="module")
def tiny_models(bpe_tokenizer_dir):
    from maskrcnn_benchmark.modeling.detector import build_detection_model

    opts = ("MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE", str(bpe_tokenizer_dir))
    torch.manual_seed(0)
    v2 = build_detection_model(_config("tiny/fiber_tiny.yaml", *opts))
    v3 = build_detection_model(_config("tiny/fiber_tiny_v3.yaml", *opts))
    return v2, v3


def test_tiny_model_round_trip_is_exact(tiny_models, tmp_path):
    v2, _ = tiny_models
    from maskrcnn_benchmark.modeling.detector import build_detection_model

    path = DetectronCheckpointer(None, v2, save_dir=str(tmp_path)).save("model_final", iteration=5)
    torch.manual_seed(99)
    other = build_detection_model(_config("tiny/fiber_tiny.yaml"))
    extras = DetectronCheckpointer(None, other).load(path, strict=True)
    assert extras["iteration"] == 5
    _assert_same_weights(other, v2)
    assert set(load_checkpoint_file(path)["model"]) == set(v2.state_dict())


def test_tiny_v3_file_into_v2_model_is_reported(tiny_models, tmp_path):
    v2, v3 = tiny_models
    path = tmp_path / "v3.pth"
    torch.save({"model": v3.state_dict()}, path)
    with pytest.raises(CheckpointMismatchError, match="FUSION_VERSION v3"):
        load_checkpoint(v2, str(path), strict=True)
    # Not strict: the shared tensors load, the v3-only ones are listed as unexpected.
    import copy

    target = copy.deepcopy(v2)
    report = load_checkpoint(target, str(path))
    assert report.unexpected and all("norm_i2t_i" in k for k in report.unexpected)
    assert report.missing == [] and report.shape_mismatch == []


def test_tiny_coarse_format_file(tiny_models, tmp_path):
    """The tiny v3 model's weights written with the coarse stage's prefixes (+ MLM/ITM extras) load into v2."""
    import copy

    v2, v3 = tiny_models
    coarse = OrderedDict()
    for key, value in v3.state_dict().items():
        if key.startswith(SWIN_BODY) and not re.match(re.escape(SWIN_BODY) + r"norm\d", key):
            coarse["vit_model." + key[len(SWIN_BODY):]] = value
        elif key.startswith(TEXT_BODY):
            coarse["text_transformer." + key[len(TEXT_BODY):]] = value
    coarse["itm_score.fc.weight"] = torch.zeros(2, 4)
    coarse["mlm_score.decoder.weight"] = torch.zeros(3, 4)
    path = tmp_path / "coarse.ckpt"
    torch.save({"state_dict": coarse, "epoch": 1}, path)
    target = copy.deepcopy(v2)
    report = load_checkpoint(target, str(path), strict=True)
    assert report.kind == "coarse" and report.is_clean
    got, want = target.state_dict(), v3.state_dict()
    for key in report.loaded:
        assert torch.equal(got[key], want[key]), key
    assert any(k.startswith("rpn.") for k in report.expected_missing)


def test_inspect_cli_and_non_saving_rank(tmp_path, caplog):
    model, _, _ = _trained()
    assert DetectronCheckpointer(None, model, save_dir=str(tmp_path), save_to_disk=False).save("m") is None
    assert os.listdir(tmp_path) == []
    path = DetectronCheckpointer(None, model, save_dir=str(tmp_path)).save("m", iteration=3)
    with caplog.at_level("INFO"):
        assert ckpt_mod.main(["inspect", path]) == 0
    assert "kind: training" in caplog.text and "fusion_backbone.{0, 2}.{bias, weight}" in caplog.text


def test_atomic_writers_replace_whole_files_or_leave_the_old_one(tmp_path):
    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    path = tmp_path / "sub" / "model.pth"
    atomic_torch_save({"w": torch.arange(3)}, str(path))  # creates the folder
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(3))
    with pytest.raises(RuntimeError, match="cannot pickle"):
        atomic_torch_save({"w": Unpicklable()}, str(path))
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(3))
    text = tmp_path / "sub" / "last_checkpoint"
    atomic_write_text(str(text), "a.pth")
    atomic_write_text(str(text), "b.pth")
    assert text.read_text() == "b.pth"
    assert sorted(p.name for p in path.parent.iterdir()) == ["last_checkpoint", "model.pth"]  # no temp left
