"""GeneralizedVLRCNN.detect_prompts on the tiny model: the naive schedule (a full pass per prompt chunk), the
reused image prefix, chunk batching and the cached text prefixes give the same detections; precisions stay
within their stated tolerance; label slots, eval mode and the text cache's invalidation."""

from pathlib import Path

import pytest
import torch

from maskrcnn_benchmark.config import cfg as default_cfg
from maskrcnn_benchmark.data.prompts import plan_detection_prompts
from maskrcnn_benchmark.modeling.detector import build_detection_model
from maskrcnn_benchmark.modeling.detector.chunked_prompts import (
    TextPrefixCache,
    auto_chunk_batch,
    precision_context,
    sample_bytes,
)
from maskrcnn_benchmark.structures.image_list import ImageList

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny" / "fiber_tiny.yaml"
NAMES = ["red square", "blue circle", "green triangle", "yellow diamond", "cat", "striped zebra", "tree", "kite"]

# fp32: the same arithmetic in another batch layout; scores within 1e-5 (the bar), boxes to 1e-3 px.
FP32_SCORE_ATOL, FP32_BOX_ATOL = 1e-5, 1e-3


def _model(tokenizer_dir, *opts, seed=0):
    cfg = default_cfg.clone()
    cfg.merge_from_file(str(TINY))
    cfg.merge_from_list(["MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE", tokenizer_dir, "MODEL.ATSS.INFERENCE_TH", "0.0",
                         "TEST.MDETR_STYLE_AGGREGATE_CLASS_NUM", "100", *opts])
    torch.manual_seed(seed)
    model = build_detection_model(cfg).eval()
    with torch.no_grad():  # non-zero fusion gates, so that the caption really changes the image features
        for name, parameter in model.named_parameters():
            if "alpha" in name:
                parameter.fill_(0.5)
    return model


def _plans(tokenizer, chunk_size=2, names=NAMES):
    return plan_detection_prompts({i + 1: n for i, n in enumerate(names)}, tokenizer, chunk_size=chunk_size,
                                  max_query_len=128)


def _images(batch=2, size=(96, 128), seed=0):
    generator = torch.Generator().manual_seed(seed)
    tensors = torch.randn(batch, 3, *size, generator=generator)
    sizes = [size, (size[0] - 10, size[1] - 20)][:batch]
    return ImageList(tensors, sizes)


def _assert_same(results, reference, score_atol=FP32_SCORE_ATOL, box_atol=FP32_BOX_ATOL):
    assert len(results) == len(reference)
    for ours, ref in zip(results, reference):
        assert len(ref) > 0
        assert ours.size == ref.size
        assert ours.get_field("labels").tolist() == ref.get_field("labels").tolist()
        torch.testing.assert_close(ours.get_field("scores"), ref.get_field("scores"), rtol=0, atol=score_atol)
        torch.testing.assert_close(ours.bbox, ref.bbox, rtol=0, atol=box_atol)


@pytest.fixture(scope="module")
def tiny(bpe_tokenizer_dir):
    return _model(bpe_tokenizer_dir)


@pytest.mark.slow  # ~26 s of CPU time: three full schedules over a long class list
def test_naive_prefix_reuse_and_chunk_batching_agree(tiny, bpe_tokenizer):
    plans = _plans(bpe_tokenizer)
    assert len(plans) == 4
    images = _images()
    naive = tiny.detect_prompts(images, plans, reuse_prefix=False)
    assert {int(label) for r in naive for label in r.get_field("labels")} <= set(range(1, 9))
    for chunk_batch in (1, 2, 3, 4, 0):
        tiny._text_cache.clear()
        _assert_same(tiny.detect_prompts(images, plans, chunk_batch=chunk_batch), naive)
    # the same again with every text prefix taken from the cache
    _assert_same(tiny.detect_prompts(images, plans, chunk_batch=3), naive)


def test_merge_keeps_plan_order_and_global_labels(tiny, bpe_tokenizer):
    plans = _plans(bpe_tokenizer)
    images = _images(batch=1)
    merged = tiny.detect_prompts(images, plans, chunk_batch=4)[0]
    singles = [tiny.detect_prompts(images, [plan], chunk_batch=1)[0] for plan in plans]
    assert merged.get_field("labels").tolist() == [int(x) for s in singles for x in s.get_field("labels")]
    for single, plan in zip(singles, plans):
        assert set(single.get_field("labels").tolist()) <= set(plan.labels)


def test_same_as_model_forward(tiny, bpe_tokenizer):
    """The naive schedule is exactly the model's forward, one prompt at a time."""
    plans = _plans(bpe_tokenizer)
    images = _images()
    with torch.no_grad():
        forward = [tiny(images, captions=[p.caption] * 2, positive_map=p.token_map) for p in plans]
    expected = [torch.cat([f[i].get_field("scores") for f in forward]) for i in range(2)]
    naive = tiny.detect_prompts(images, plans, reuse_prefix=False)
    for result, scores in zip(naive, expected):
        assert torch.equal(result.get_field("scores"), scores)


def test_captions_of_different_lengths_are_padded_without_changing_results(bpe_tokenizer_dir, bpe_tokenizer):
    model = _model(bpe_tokenizer_dir, "MODEL.LANGUAGE_BACKBONE.PAD_MAX", "False")
    plans = _plans(bpe_tokenizer, chunk_size=3, names=NAMES + ["a very long and winding class name here"])
    assert len({p.num_tokens for p in plans}) > 1
    images = _images()
    naive = model.detect_prompts(images, plans, reuse_prefix=False)
    _assert_same(model.detect_prompts(images, plans, chunk_batch=len(plans)), naive)


def test_text_prefixes_are_computed_once_per_caption(tiny, bpe_tokenizer, monkeypatch):
    plans = _plans(bpe_tokenizer)
    tiny._text_cache.clear()
    calls = []
    original = tiny.fusion_backbone.forward_text_prefix
    monkeypatch.setattr(tiny.fusion_backbone, "forward_text_prefix", lambda t: calls.append(1) or original(t))
    for seed in range(3):  # three batches of a run
        tiny.detect_prompts(_images(seed=seed), plans, chunk_batch=2)
    assert len(calls) == len(plans) and len(tiny._text_cache) == len(plans)


def test_text_cache_follows_weight_changes(bpe_tokenizer_dir, bpe_tokenizer):
    model = _model(bpe_tokenizer_dir)
    plans = _plans(bpe_tokenizer)
    images = _images()
    before = model.detect_prompts(images, plans)
    with torch.no_grad():  # an in-place update, as an optimizer step or load_state_dict makes
        model.fusion_backbone.language_backbone.body.model.embeddings.LayerNorm.bias.add_(0.3)
    after = model.detect_prompts(images, plans)
    _assert_same(after, model.detect_prompts(images, plans, reuse_prefix=False))
    assert not torch.allclose(after[0].get_field("scores")[:5], before[0].get_field("scores")[:5])
    model.train()
    assert len(model._text_cache) == 0


def test_label_slots_and_mode_checks(tiny, bpe_tokenizer):
    names = {200 + i: n for i, n in enumerate(NAMES[:3])}  # labels above the 100 slots of the fixture
    plans = plan_detection_prompts(names, bpe_tokenizer, chunk_size=2, max_query_len=128)
    images = _images(batch=1)
    with pytest.raises(ValueError, match="MDETR_STYLE_AGGREGATE_CLASS_NUM"):
        tiny.detect_prompts(images, plans)
    labels = tiny.detect_prompts(images, plans, check_label_slots=False)[0].get_field("labels")
    assert len(labels) > 0 and set(labels.tolist()) <= set(names)
    with pytest.raises(ValueError, match="no prompt"):
        tiny.detect_prompts(images, [])
    with pytest.raises(ValueError, match="CHUNK_BATCH"):
        tiny.detect_prompts(images, plans, chunk_batch=-1, check_label_slots=False)
    tiny.train()
    try:
        with pytest.raises(RuntimeError, match="eval mode"):
            tiny.detect_prompts(images, plans)
    finally:
        tiny.eval()


def test_token_map_may_be_a_dense_positive_map(tiny, bpe_tokenizer):
    plan = _plans(bpe_tokenizer)[0]

    class Dense:
        caption = plan.caption
        token_map = plan.dense_positive_map(128)  # row p -> label p + 1

    images = _images(batch=1)
    dense = tiny.detect_prompts(images, [Dense()])[0]
    remapped = {row + 1: plan.token_map[label] for row, label in enumerate(plan.labels)}

    class Mapped:
        caption = plan.caption
        token_map = remapped

    _assert_same([dense], tiny.detect_prompts(images, [Mapped()]), score_atol=0, box_atol=0)


# ------------------------------------------------------------------------------------------------ precision
def _match_scores(result, reference, min_iou=0.9):
    """Score differences of the reference's detections found again (same label, IoU >= min_iou)."""
    from maskrcnn_benchmark.structures.boxlist_ops import boxlist_iou

    iou = boxlist_iou(reference, result)
    same_label = reference.get_field("labels")[:, None] == result.get_field("labels")[None, :]
    iou = iou * same_label
    best, index = iou.max(dim=1) if len(result) else (torch.zeros(len(reference)), None)
    found = best >= min_iou
    diffs = (reference.get_field("scores")[found] - result.get_field("scores")[index[found]]).abs()
    return found.float().mean().item(), diffs


def test_tf32_on_cpu_is_fp32(tiny, bpe_tokenizer):
    plans = _plans(bpe_tokenizer)
    images = _images()
    _assert_same(tiny.detect_prompts(images, plans, precision="tf32"),
                 tiny.detect_prompts(images, plans, precision="fp32"), score_atol=0, box_atol=0)


# Tolerances of the 16-bit precisions. bf16 keeps 8 mantissa bits (a relative step of 2^-8 = 0.4% per rounding),
# fp16 11 bits (0.05%); both round every matmul input through ~20 transformer and DyHead layers, while the
# box deltas, token logits and post-processing stay float32. Measured on the trained demo model over its 48
# synthetic validation images (benchmarks/results/precision_demo_tiny_cpu.json): of the 20 best fp32
# detections per image, bf16 finds 98.9% again (same label, IoU >= 0.9) with scores within 0.005 (mean 0.0008)
# and AP 19.30 vs 19.06; fp16 finds 100% within 0.0005, AP 19.06. Bars: >= 90% found, scores within 4x the
# worst measured difference (bf16 0.02, fp16 0.002); tf32 (CUDA) rounds matmul inputs to 10 mantissa bits like
# fp16 and gets fp16's bar.
SCORE_ATOL = {"bf16": 0.02, "fp16": 0.002, "tf32": 0.002}


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_16_bit_precisions_within_tolerance(tiny, bpe_tokenizer, precision):
    plans = _plans(bpe_tokenizer)
    images = _images()
    reference = tiny.detect_prompts(images, plans, precision="fp32")
    low = tiny.detect_prompts(images, plans, precision=precision)
    for result, ref in zip(low, reference):
        assert result.bbox.dtype == torch.float32 and result.get_field("scores").dtype == torch.float32
        top = ref[torch.argsort(ref.get_field("scores"), descending=True)[:20]]
        found, diffs = _match_scores(result, top)
        assert found >= 0.9 and diffs.max().item() <= SCORE_ATOL[precision]


def test_precision_context_restores_switches_and_checks_names():
    with pytest.raises(ValueError, match="TEST.PRECISION"):
        with precision_context("int8", torch.device("cpu")):
            pass
    with precision_context("bf16", torch.device("cpu")):
        assert torch.is_autocast_enabled("cpu")
    assert not torch.is_autocast_enabled("cpu")


def test_chunk_batch_choice_and_cache_object():
    assert sample_bytes((800, 1344), 256) > sample_bytes((400, 672), 256) > sample_bytes((400, 672), 256, 2)
    cpu = torch.device("cpu")
    assert auto_chunk_batch(31, 1, 1, cpu) == 8  # tiny samples: the CPU cap
    assert auto_chunk_batch(3, 1, 1, cpu) == 3
    assert auto_chunk_batch(31, 1, 1 << 60, cpu) == 1  # nothing fits: one at a time
    assert len(TextPrefixCache()) == 0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_paths_agree_and_precisions(bpe_tokenizer_dir, bpe_tokenizer):
    model = _model(bpe_tokenizer_dir).cuda()
    plans = _plans(bpe_tokenizer)
    images = _images()
    switches = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    naive = model.detect_prompts(images, plans, reuse_prefix=False, precision="fp32")
    assert naive[0].bbox.is_cuda
    for chunk_batch in (1, 4, 0):
        _assert_same(model.detect_prompts(images, plans, chunk_batch=chunk_batch, precision="fp32"), naive)
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == switches
    for precision in ("tf32", "bf16", "fp16"):
        low = model.detect_prompts(images, plans, precision=precision, chunk_batch=4)
        for result, ref in zip(low, naive):
            top = ref[torch.argsort(ref.get_field("scores"), descending=True)[:20]]
            found, diffs = _match_scores(result, top)
            assert found >= 0.9 and diffs.max().item() <= SCORE_ATOL[precision], precision


def test_compile_flag_routes_the_backbone_passes_through_torch_compile(bpe_tokenizer_dir, bpe_tokenizer,
                                                                       monkeypatch):
    compiled = []

    def fake_compile(fn, mode=None):
        compiled.append((fn.__name__, mode))
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    model = _model(bpe_tokenizer_dir, "TEST.COMPILE", "reduce-overhead")
    plans = _plans(bpe_tokenizer)
    images = _images()
    _assert_same(model.detect_prompts(images, plans), model.detect_prompts(images, plans, reuse_prefix=False))
    assert sorted(compiled) == [("forward_from_prefix", "reduce-overhead"), ("forward_image_prefix", "reduce-overhead")]
    with pytest.raises(ValueError, match="TEST.COMPILE"):
        _model(bpe_tokenizer_dir, "TEST.COMPILE", "fastest")
