import json
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

from maskrcnn_benchmark.config import cfg as base_cfg
from maskrcnn_benchmark.modeling.backbone.fpn import FPN, DropBlock2D, LastLevelP6P7
from maskrcnn_benchmark.modeling.backbone.fusion_backbone import FusionBackbone, ImagePrefix, TextPrefix
from maskrcnn_benchmark.modeling.backbone.swin import SwinTransformer
from maskrcnn_benchmark.modeling.language_backbone.roberta import RobertaArch, RobertaFusedEncoder

REPO = Path(__file__).resolve().parents[3]


def make_fusion(embed_dim=16, depths=(1, 1, 2, 2), heads=(1, 2, 2, 4), window=4, text_dim=32, text_layers=4,
                text_heads=2, ffn=64, fused3=1, v3=False, frozen_stages=-1, add_linear_layer=False, vocab=300,
                fpn_out=16, drop_block=True, drop_path=0.0):
    n_fused = fused3 + depths[3]
    first = text_layers - n_fused
    kv = {first + j: 4 * embed_dim for j in range(fused3)}
    kv.update({first + fused3 + j: 8 * embed_dim for j in range(depths[3])})
    body = SwinTransformer(embed_dim=embed_dim, depths=depths, num_heads=heads, window=window,
                           drop_path_rate=drop_path, frozen_stages=frozen_stages, dim_text=text_dim,
                           fusion_blocks_stage3=fused3, i2t_query_norm=v3)
    widths = body.num_features
    fpn = FPN([0] + widths[1:], fpn_out, LastLevelP6P7(fpn_out, fpn_out),
              DropBlock2D(0.3, 3) if drop_block else None)
    arch = RobertaArch(vocab_size=vocab, hidden_size=text_dim, num_layers=text_layers, num_heads=text_heads,
                       intermediate_size=ffn, fusion_kv_dims=kv)
    return FusionBackbone(nn.Sequential(OrderedDict(body=body, fpn=fpn)),
                          nn.Sequential(OrderedDict(body=RobertaFusedEncoder(arch))), add_linear_layer)


def tiny(**kw):
    torch.manual_seed(0)
    return make_fusion(**kw).eval()


def set_alphas(model, image=None, text=None):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("alpha_i2t") and image is not None:
                p.fill_(image)
            if name.endswith("alpha_t2i") and text is not None:
                p.fill_(text)


def inputs(batch=2, seed=0, size=(64, 96)):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, 300, (batch, 8), generator=g)
    ids[:, 0], ids[:, -1] = 0, 2
    mask = torch.ones_like(ids)
    if batch > 1:
        ids[1, 5:] = 1
        ids[1, 4] = 2
        mask[1, 5:] = 0
    images = torch.randn(batch, 3, *size, generator=g)
    return {"input_ids": ids, "attention_mask": mask}, images


def run(model, tok, images):
    with torch.no_grad():
        return model(tok, images)


def swapped_runs(model):
    """The model on (caption A, image 1), (caption B, image 1) and (caption A, image 2).

    Returns:
        (FPN maps for A/1, FPN maps for B/1, text hidden states for A/1, text hidden states for A/2)
    """
    tok, images = inputs()
    tok2, _ = inputs(seed=7)
    feats_a, lang_a = run(model, tok, images)
    feats_b, _ = run(model, tok2, images)
    _, lang_c = run(model, tok, torch.randn_like(images))
    return feats_a, feats_b, lang_a["hidden"], lang_c["hidden"]


# ----------------------------------------------------------------------------- upstream key/shape compatibility

FIXTURES = [("pretrain_v2.json", False, 2), ("coco_finetune_v2.json", False, -1), ("refcoco_v3.json", True, -1)]


def _fixture(fixtures_dir, name):
    path = fixtures_dir / "upstream-state-dict" / name
    if not path.is_file():
        pytest.skip(f"fixture {path} is absent")
    data = json.loads(path.read_text())
    entries = {k[len("fusion_backbone."):]: (tuple(s), t) for k, s, t in data["entries"]
               if k.startswith("fusion_backbone.")}
    buffers = {k[len("fusion_backbone."):] for k in data["buffers"] if k.startswith("fusion_backbone.")}
    frozen = {k[len("fusion_backbone."):] for k in data["frozen_params"] if k.startswith("fusion_backbone.")}
    return entries, buffers, frozen


def _fiber_b(v3, frozen_stages):
    with torch.device("meta"):
        return make_fusion(embed_dim=128, depths=(2, 2, 18, 2), heads=(4, 8, 16, 32), window=12, text_dim=768,
                           text_layers=12, text_heads=12, ffn=3072, fused3=4, v3=v3, frozen_stages=frozen_stages,
                           vocab=50265, fpn_out=256, drop_path=0.4)


def _compare_with_fixture(model, fixtures_dir, name):
    entries, buffers, frozen = _fixture(fixtures_dir, name)
    ours = {k: (tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in model.state_dict().items()}
    missing, unexpected = sorted(entries.keys() - ours.keys()), sorted(ours.keys() - entries.keys())
    assert not missing and not unexpected, (missing[:10], unexpected[:10])
    wrong = {k: (ours[k], entries[k]) for k in entries if ours[k] != entries[k]}
    assert not wrong
    assert {k for k, _ in model.named_buffers()} == buffers
    params = dict(model.named_parameters())
    assert sum(p.numel() for p in params.values()) == sum(
        torch.Size(s).numel() for k, (s, _) in entries.items() if k not in buffers)
    assert {k for k, p in params.items() if not p.requires_grad} == frozen


@pytest.mark.parametrize("name,v3,frozen_stages", FIXTURES)
def test_fiber_b_keys_and_shapes_match_upstream(fixtures_dir, name, v3, frozen_stages):
    _compare_with_fixture(_fiber_b(v3, frozen_stages), fixtures_dir, name)


CONFIGS = {
    "pretrain_v2.json": "configs/pretrain/mixed_nococo_flickr_objects365.yaml",
    "coco_finetune_v2.json": "configs/e2e_dyhead_SwinT_B_FPN_coco_finetuning_fusion_backbone.yaml",
    "refcoco_v3.json": "configs/refcoco.yaml",
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_builder_from_upstream_config_matches_upstream(fixtures_dir, name):
    from maskrcnn_benchmark.modeling.backbone import build_fusion_backbone

    path = REPO / CONFIGS[name]
    cfg = base_cfg.clone()
    cfg.merge_from_file(str(path))
    with torch.device("meta"):
        model = build_fusion_backbone(cfg)
    _compare_with_fixture(model, fixtures_dir, name)


# ----------------------------------------------------------------------------------------------- behaviour

def test_output_structure():
    model = tiny()
    tok, images = inputs()
    features, language = run(model, tok, images)
    assert [tuple(f.shape) for f in features] == [(2, 16, 8, 12), (2, 16, 4, 6), (2, 16, 2, 3), (2, 16, 1, 2),
                                                  (2, 16, 1, 1)]
    assert language["hidden"].shape == (2, 8, 32) and language["aggregate"].shape == (2, 32)
    assert torch.equal(language["embedded"][1, 5:], torch.zeros(3, 32))
    assert language["masks"] is tok["attention_mask"]


def test_zero_alphas_decouple_image_and_text():
    feats_a, feats_b, text_1, text_2 = swapped_runs(tiny())
    for a, b in zip(feats_a, feats_b):
        assert torch.equal(a, b)
    torch.testing.assert_close(text_1, text_2)


def test_image_to_text_direction():
    model = tiny()
    set_alphas(model, image=0.5, text=0.0)
    feats_a, feats_b, text_1, text_2 = swapped_runs(model)
    for level in range(5):  # P3..P7 all see stage-3/4 features, which now depend on the caption
        assert not torch.allclose(feats_a[level], feats_b[level])
    torch.testing.assert_close(text_1, text_2)  # text still independent of the image


def test_text_to_image_direction():
    model = tiny()
    set_alphas(model, image=0.0, text=0.5)
    feats_a, feats_b, text_1, text_2 = swapped_runs(model)
    assert not torch.allclose(text_1, text_2)
    for a, b in zip(feats_a, feats_b):
        assert torch.equal(a, b)  # image still independent of the caption


def test_fusion_steps_are_simultaneous():
    """Each fused step: Swin block k reads the text BEFORE text layer k, text layer k reads the image BEFORE block k."""
    model = tiny()
    set_alphas(model, image=0.5, text=0.5)
    body, layers = model.backbone.body, model.language_backbone.body.model.encoder.layer
    pairs = [(body.layers[2].blocks[1], layers[1]), (body.layers[3].blocks[0], layers[2]),
             (body.layers[3].blocks[1], layers[3])]
    seen = []
    for block, layer in pairs:
        record = {}
        block.register_forward_pre_hook(
            lambda m, args, r=record: r.update(block_x=args[0], block_text=args[4]))
        layer.register_forward_pre_hook(
            lambda m, args, kwargs, r=record: r.update(layer_text=args[0],
                                                      layer_image=kwargs.get("image_tokens", args[2:3] or None)),
            with_kwargs=True)
        seen.append(record)
    tok, images = inputs()
    run(model, tok, images)
    for record in seen:
        assert record["block_text"] is record["layer_text"]
        image = record["layer_image"]
        assert (image[0] if isinstance(image, tuple) else image) is record["block_x"]


def test_image_prefix_reuse_equals_full_forward():
    model = tiny()
    set_alphas(model, image=0.3, text=0.3)
    tok, images = inputs()
    with torch.no_grad():
        full_feats, full_lang = model(tok, images)
        prefix = model.forward_image_prefix(images)
        assert isinstance(prefix, ImagePrefix) and prefix.tokens.shape == (2, 4 * 6, 64)
        feats, lang = model.forward_from_prefix(prefix, tok)
    for a, b in zip(full_feats, feats):
        assert torch.equal(a, b)
    assert torch.equal(full_lang["hidden"], lang["hidden"])


def test_single_image_prefix_serves_several_prompts():
    model = tiny()
    set_alphas(model, image=0.3, text=0.3)
    tok, images = inputs(batch=3)
    one = images[:1]
    with torch.no_grad():
        prefix = model.forward_image_prefix(one)
        feats, lang = model.forward_from_prefix(prefix, tok)
        for i in range(3):
            single = {k: v[i:i + 1] for k, v in tok.items()}
            ref_feats, ref_lang = model(single, one)
            for a, b in zip(feats, ref_feats):
                torch.testing.assert_close(a[i:i + 1], b, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(lang["hidden"][i:i + 1], ref_lang["hidden"], rtol=1e-5, atol=1e-5)
        with pytest.raises(ValueError, match="expand"):
            model.forward_from_prefix(model.forward_image_prefix(images[:2]), tok)


def test_single_caption_prefix_serves_several_images():
    model = tiny()
    set_alphas(model, image=0.3, text=0.3)
    tok, images = inputs(batch=2)
    caption = {k: v[1:2] for k, v in tok.items()}  # the padded caption
    with torch.no_grad():
        text_prefix = model.forward_text_prefix(caption)
        assert isinstance(text_prefix, TextPrefix) and text_prefix.hidden.shape == (1, 8, 32)
        feats, lang = model.forward_from_prefix(model.forward_image_prefix(images), text_prefix)
        for i in range(2):
            ref_feats, ref_lang = model(caption, images[i:i + 1])
            for a, b in zip(feats, ref_feats):
                torch.testing.assert_close(a[i:i + 1], b, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(lang["hidden"][i:i + 1], ref_lang["hidden"], rtol=1e-5, atol=1e-5)
        assert lang["masks"].shape == (2, 8)
    with pytest.raises(ValueError, match="differ in shape"):
        model.forward_text_prefix({"input_ids": tok["input_ids"], "attention_mask": tok["attention_mask"][:, :4]})


def test_v3_query_norm_changes_result():
    tok, images = inputs()
    v2, v3 = tiny(v3=False), tiny(v3=True)
    missing, unexpected = v3.load_state_dict(v2.state_dict(), strict=False)
    assert not unexpected and all("norm_i2t_i" in k for k in missing) and len(missing) == 2 * 3
    for m in (v2, v3):
        set_alphas(m, image=0.5)
    assert not torch.allclose(run(v2, tok, images)[0][0], run(v3, tok, images)[0][0])


def test_prompt_tuning_rows_are_added_to_text_embeddings():
    model = tiny(add_linear_layer=True)
    assert model.tunable_linear.weight.shape == (1000, 32) and not model.tunable_linear.weight.any()
    tok, images = inputs()
    base = run(model, tok, images)[1]["hidden"]
    with torch.no_grad():
        model.tunable_linear.weight[3].fill_(1.0)
    tuned = run(model, tok, images)[1]["hidden"]
    assert not torch.allclose(base, tuned)
    assert "tunable_linear.weight" not in tiny().state_dict()


def test_backward_reaches_every_trainable_parameter():
    model = make_fusion(frozen_stages=2, drop_path=0.1).train()
    set_alphas(model, image=0.2, text=0.2)
    tok, images = inputs()
    features, language = model(tok, images)
    loss = sum(f.square().mean() for f in features) + language["hidden"].square().mean()
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    # the padding rows of the embeddings get zero grads but still a grad tensor; nothing is disconnected
    assert not no_grad
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith(("backbone.body.patch_embed.", "backbone.body.layers.0.")) for n in frozen)


def test_mismatched_text_and_image_fusion_is_rejected():
    body = SwinTransformer(embed_dim=16, depths=(1, 1, 2, 2), num_heads=(1, 2, 2, 4), window=4, dim_text=32,
                           fusion_blocks_stage3=1)
    fpn = FPN([0, 32, 64, 128], 16, LastLevelP6P7(16, 16))
    arch = RobertaArch(vocab_size=300, hidden_size=32, num_layers=4, num_heads=2, intermediate_size=64,
                       fusion_kv_dims={2: 128, 3: 128})  # one fused text layer short
    with pytest.raises(ValueError, match="fusion layout mismatch"):
        FusionBackbone(nn.Sequential(OrderedDict(body=body, fpn=fpn)),
                       nn.Sequential(OrderedDict(body=RobertaFusedEncoder(arch))))


def test_builders_from_cfg_tiny():
    from maskrcnn_benchmark.modeling.backbone import build_backbone, build_fusion_backbone
    from maskrcnn_benchmark.modeling.language_backbone import build_language_backbone

    cfg = base_cfg.clone()
    cfg.merge_from_list([
        "MODEL.SWINT.VERSION", "fusion", "MODEL.BACKBONE.CONV_BODY", "SWINT-FPN-RETINANET",
        "MODEL.BACKBONE.FUSION_VERSION", "v3", "MODEL.BACKBONE.OUT_CHANNELS", 16,
        "MODEL.BACKBONE.FREEZE_CONV_BODY_AT", -1,
        "MODEL.SWINT.EMBED_DIM", 16, "MODEL.SWINT.OUT_CHANNELS", (16, 32, 64, 128),
        "MODEL.SWINT.DEPTHS", (1, 1, 2, 2), "MODEL.SWINT.NUM_HEADS", (1, 2, 2, 4), "MODEL.SWINT.WINDOW_SIZE", 4,
        "MODEL.SWINT.FUSION_BLOCKS_STAGE3", 1,
        "MODEL.LANGUAGE_BACKBONE.MODEL_TYPE", "roberta-fused-v2", "MODEL.LANGUAGE_BACKBONE.LANG_DIM", 32,
        "MODEL.LANGUAGE_BACKBONE.NUM_LAYERS", 4, "MODEL.LANGUAGE_BACKBONE.NUM_ATTENTION_HEADS", 2,
        "MODEL.LANGUAGE_BACKBONE.INTERMEDIATE_SIZE", 64, "MODEL.LANGUAGE_BACKBONE.VOCAB_SIZE", 300,
    ])
    torch.manual_seed(0)
    model = build_fusion_backbone(cfg).eval()
    assert model.num_pre_fusion_text_layers == 1
    assert not model.language_backbone.body.model.use_checkpoint
    cfg.merge_from_list(["MODEL.LANGUAGE_BACKBONE.USE_CHECKPOINT", True, "MODEL.BACKBONE.USE_CHECKPOINT", True])
    checkpointed = build_fusion_backbone(cfg)
    assert checkpointed.language_backbone.body.model.use_checkpoint
    assert all(layer.use_checkpoint for layer in checkpointed.backbone.body.layers)
    assert any(k.endswith("norm_i2t_i.weight") for k in model.state_dict())
    assert isinstance(model.backbone.fpn.drop_block, DropBlock2D)
    tok, images = inputs()
    features, language = run(model, tok, images)
    assert len(features) == 5 and features[0].shape == (2, 16, 8, 12) and language["hidden"].shape == (2, 8, 32)
    assert set(build_backbone(cfg).state_dict()) == set(model.backbone.state_dict())
    assert set(build_language_backbone(cfg).state_dict()) == set(model.language_backbone.state_dict())
    cfg.merge_from_list(["MODEL.BACKBONE.FUSION_VERSION", "v1"])
    with pytest.raises(ValueError, match="FUSION_VERSION"):
        build_fusion_backbone(cfg)
    cfg.merge_from_list(["MODEL.BACKBONE.FUSION_VERSION", "v2", "MODEL.SWINT.FUSION_BLOCKS_STAGE3", 3])
    with pytest.raises(ValueError, match="FUSION_BLOCKS_STAGE3"):
        build_fusion_backbone(cfg)  # more fused blocks than stage 3 has
    cfg.merge_from_list(["MODEL.SWINT.DEPTHS", (1, 1, 4, 2)])
    with pytest.raises(ValueError, match="NUM_LAYERS"):
        build_fusion_backbone(cfg)  # 5 fused steps, 4 text layers
