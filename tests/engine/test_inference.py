"""Inference loop with a stand-in model/evaluator: chunked detection prompts, batched grounding, outputs."""


import pytest
import torch
from yacs.config import CfgNode

from maskrcnn_benchmark.engine.inference import (
    format_metrics_table,
    grounding_queries,
    inference,
    primary_metric,
)
from maskrcnn_benchmark.modeling.detector.chunked_prompts import merge_per_image
from maskrcnn_benchmark.structures.bounding_box import BoxList
from maskrcnn_benchmark.structures.image_list import ImageList


def _cfg(task="detection", chunk=-1, subset=-1):
    cfg = CfgNode()
    cfg.TEST = CfgNode(dict(EVAL_TASK=task, SUBSET=subset, CHUNKED_EVALUATION=chunk))
    cfg.DATASETS = CfgNode(dict(SEPARATION_TOKENS=". ", USE_CAPTION_PROMPT=False, CAPTION_PROMPT=None,
                                USE_SUPRESS_QUERY=False, SUPRESS_QUERY=None))
    cfg.MODEL = CfgNode(dict(LANGUAGE_BACKBONE=CfgNode(dict(MAX_QUERY_LEN=64, TOKENIZER_TYPE="unused"))))
    return cfg


class RecordingModel(torch.nn.Module):
    """Returns, per image, one box per label of the positive map (score = label / 100)."""

    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer
        self.calls = []
        self.options = []

    def detect_prompts(self, images, plans, *, reuse_prefix=True, chunk_batch=None, precision=None,
                       check_label_slots=True):
        self.options.append((reuse_prefix, chunk_batch, precision))
        per_plan = [self(images, captions=[p.caption] * len(images.image_sizes), positive_map=p.token_map)
                    for p in plans]
        return merge_per_image(per_plan)

    def forward(self, images, captions=None, positive_map=None):
        assert not self.training
        self.calls.append((len(images.image_sizes), list(captions), dict(positive_map)))
        outputs = []
        for height, width in images.image_sizes:
            labels = sorted(positive_map)
            boxes = torch.tensor([[1.0, 2.0, 10.0, 12.0]] * len(labels)).reshape(-1, 4)
            boxlist = BoxList(boxes, (width, height))
            boxlist.add_field("labels", torch.tensor(labels, dtype=torch.int64))
            boxlist.add_field("scores", torch.tensor(labels, dtype=torch.float32) / 100)
            outputs.append(boxlist)
        return outputs


class Target:
    def __init__(self, caption=None, rows=None):
        self.fields = {}
        if caption is not None:
            self.fields["caption"] = caption
        if rows is not None:
            self.fields["positive_map_eval"] = rows

    def has_field(self, name):
        return name in self.fields

    def get_field(self, name):
        return self.fields[name]


class Dataset:
    def __init__(self, n, names):
        self.n, self.names = n, names

    def __len__(self):
        return self.n

    def categories(self):
        return dict(enumerate(self.names, start=1))


class RecordingEvaluator:
    def __init__(self):
        self.updates = []

    def update(self, ids, boxlists):
        self.updates.append((list(ids), boxlists))

    def evaluate(self):
        return {"AP": 12.5, "per_category": {"a": 1.0}}


class Loader(list):
    def __init__(self, batches, dataset):
        super().__init__(batches)
        self.dataset = dataset


def _images(sizes):
    tensors = torch.zeros(len(sizes), 3, 32, 32)
    return ImageList(tensors, list(sizes))


def test_chunked_detection_prompts_use_global_labels(bpe_tokenizer, tmp_path):
    names = ["cat", "dog", "red square", "blue circle", "tree"]
    dataset = Dataset(4, names)
    batches = [(_images([(32, 30), (28, 32)]), [Target(), Target()], (0, 1), None, None),
               (_images([(32, 32), (20, 24)]), [Target(), Target()], (2, 3), None, None)]
    model = RecordingModel(bpe_tokenizer)
    evaluator = RecordingEvaluator()
    metrics = inference(model, Loader(batches, dataset), "toy_val", device="cpu", output_folder=str(tmp_path),
                        cfg=_cfg(chunk=2), evaluator=evaluator)
    assert metrics["AP"] == 12.5
    # 3 chunks (2 + 2 + 1 classes) per batch, each on the whole batch.
    assert len(model.calls) == 6 and all(n == 2 for n, _, _ in model.calls)
    assert [c[1][0] for c in model.calls[:3]] == ["cat. dog", "red square. blue circle", "tree"]
    assert [sorted(c[2]) for c in model.calls[:3]] == [[1, 2], [3, 4], [5]]
    # Each image gets the detections of every chunk, labelled with global ids.
    ids, boxlists = evaluator.updates[1]
    assert ids == [2, 3]
    assert boxlists[1].get_field("labels").tolist() == [1, 2, 3, 4, 5]
    assert boxlists[1].size == (24, 20)
    table = (tmp_path / "metrics.txt").read_text()
    assert "AP" in table and "12.5000" in table and "per_category" not in table


def test_grounding_batches_keep_per_image_captions(bpe_tokenizer):
    rows_a = torch.zeros(2, 64)
    rows_a[0, 1:3] = 1
    rows_a[1, 4] = 1
    rows_b = torch.zeros(1, 64)
    rows_b[0, 2] = 1
    targets = [Target("a man with a hat", rows_a), Target("the left dog", rows_b), Target("a man with a hat", rows_a)]
    batches = [(_images([(32, 32)] * 3), targets, (0, 1, 2), None, None)]
    model = RecordingModel(bpe_tokenizer)
    evaluator = RecordingEvaluator()
    inference(model, Loader(batches, Dataset(3, [])), "flickr30k_val", device="cpu", cfg=_cfg("grounding"),
              evaluator=evaluator)
    # Images 0 and 2 share caption and map: one forward of 2 images, one of 1.
    assert sorted((n, caps[0]) for n, caps, _ in model.calls) == [(1, "the left dog"), (2, "a man with a hat")]
    maps = {caps[0]: m for _, caps, m in model.calls}
    assert maps["a man with a hat"] == {1: [1, 2], 2: [4]}
    assert maps["the left dog"] == {1: [2]}
    _, boxlists = evaluator.updates[0]
    assert [b.get_field("labels").tolist() for b in boxlists] == [[1, 2], [1], [1, 2]]


def test_subset_stops_early_and_bad_task_is_rejected(bpe_tokenizer):
    batches = [(_images([(32, 32)]), [Target()], (i,), None, None) for i in range(5)]
    model = RecordingModel(bpe_tokenizer)
    evaluator = RecordingEvaluator()
    inference(model, Loader(batches, Dataset(5, ["cat"])), "x", device="cpu", cfg=_cfg(subset=2), evaluator=evaluator)
    assert len(evaluator.updates) == 2
    with pytest.raises(ValueError, match="EVAL_TASK"):
        inference(model, Loader(batches, Dataset(5, ["cat"])), "x", device="cpu", cfg=_cfg(task=""),
                  evaluator=evaluator)


def test_grounding_queries_errors_name_the_image():
    with pytest.raises(ValueError, match="image 1 .* no 'caption'"):
        grounding_queries([Target("x", torch.ones(1, 4)), Target()], None)
    with pytest.raises(ValueError, match="image 0 .* no positive map"):
        grounding_queries([Target("x")], None)
    queries = grounding_queries([Target("x")], [torch.tensor([[0.0, 1.0, 1.0]])])
    assert queries[0].token_map == {1: [1, 2]}


def test_primary_metric_and_table():
    assert primary_metric({"AP": 40.0, "AP50": 60.0}) == 40.0
    assert primary_metric({"R@1": 80.0, "R@5": 90.0}) == 80.0
    assert primary_metric({"refcoco_val": {"accuracy": 70.0}, "refcoco_testA": {"accuracy": 80.0}}) == 75.0
    assert primary_metric({"AP": None}) is None and primary_metric({}) is None
    table = format_metrics_table({"AP": 1.23456, "nested": {"x": 2}, "skip": "text"}, title="t")
    assert table.splitlines()[0] == "t" and "nested/x" in table and "1.2346" in table and "skip" not in table


def test_run_options_come_from_the_config(bpe_tokenizer):
    batches = [(_images([(32, 32)]), [Target()], (0,), None, None)]
    model = RecordingModel(bpe_tokenizer)
    cfg = _cfg(chunk=1)
    cfg.TEST.REUSE_IMAGE_PREFIX, cfg.TEST.CHUNK_BATCH, cfg.TEST.PRECISION = False, 3, "bf16"
    inference(model, Loader(batches, Dataset(1, ["cat", "dog"])), "x", device="cpu", cfg=cfg,
              evaluator=RecordingEvaluator())
    assert model.options == [(False, 3, "bf16")]


def test_evaluator_errors_reach_the_caller(bpe_tokenizer):
    class Failing(RecordingEvaluator):
        def update(self, ids, boxlists):
            raise KeyError(f"image {ids[0]} is unknown")

    batches = [(_images([(32, 32)]), [Target()], (i,), None, None) for i in range(3)]
    with pytest.raises(KeyError, match="image 0"):
        inference(RecordingModel(bpe_tokenizer), Loader(batches, Dataset(3, ["cat"])), "x", device="cpu",
                  cfg=_cfg(), evaluator=Failing())


def test_tables_name_the_evaluation_back_end():
    from maskrcnn_benchmark.engine.evaluate import _summary_table
    from maskrcnn_benchmark.engine.inference import _table_title

    assert _table_title("coco_2017_val", "detection", {"AP": 1.0, "backend": "faster"}) == (
        "coco_2017_val (detection; scored with faster-coco-eval)")
    assert _table_title("x", "detection", {"AP": 1.0, "backend": "pycocotools"}).endswith("scored with pycocotools)")
    assert _table_title("refcoco_val", "grounding", {"accuracy": 1.0}) == "refcoco_val (grounding)"
    table = _summary_table({"tasks": {"t.yaml": {"lvis_evaluation_mini_val": {"AP": 35.8, "backend": "lvis"},
                                                 "refcoco_val": {"accuracy": 90.0}}}})
    rows = table.splitlines()
    assert rows[0].split()[-2:] == ["scored", "with"]
    assert rows[2].split()[-1] == "lvis" and "35.8000" in rows[2]
    assert rows[3].split()[-1] == "-"
