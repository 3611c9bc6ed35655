"""make_data_loader on the synthetic copies through the real paths catalog and task configs."""

import os

import pytest

from maskrcnn_benchmark.config import cfg as base_cfg
from maskrcnn_benchmark.data.build import build_dataset, compute_max_iter, make_data_loader
from maskrcnn_benchmark.structures.image_list import ImageList

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def data_cfg(synthetic_root, bpe_tokenizer_dir, monkeypatch):
    root, _ = synthetic_root
    monkeypatch.setenv("DATASET", root)
    cfg = base_cfg.clone()
    cfg.merge_from_list([
        "MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE", bpe_tokenizer_dir,
        "INPUT.MIN_SIZE_TRAIN", 64, "INPUT.MAX_SIZE_TRAIN", 100, "INPUT.MIN_SIZE_TEST", 64, "INPUT.MAX_SIZE_TEST", 100,
        "DATALOADER.NUM_WORKERS", 0, "DATALOADER.SIZE_DIVISIBILITY", 32, "DATASETS.SEPARATION_TOKENS", ". ",
        "SOLVER.IMS_PER_BATCH", 2, "SOLVER.MAX_ITER", 4, "TEST.IMS_PER_BATCH", 4,
    ])
    return cfg


def test_pretraining_mix_loader(data_cfg):
    cfg = data_cfg
    cfg.DATASETS.TRAIN = ("mixed_train_no_coco", "flickr30k_train", "object365_dt_train")
    cfg.DATASETS.CONTROL_PROB = (0.05, 0.05, 0.5, 0.2)  # FIBER's pre-training values (p3 treated as 0)
    cfg.DATASETS.RANDOM_SAMPLE_NEG = 85
    cfg.DATALOADER.ASPECT_RATIO_GROUPING = False
    loader = make_data_loader(cfg, is_train=True)
    assert loader.dataset_length == 6 + 3 * 2 + 7  # flickr: 3 images x 2 sentences; O365 TSV: 6 rows + 1 repeat
    batches = list(loader)
    assert len(batches) == 4
    for images, targets, _ids, positive_map, positive_map_eval in batches:
        assert isinstance(images, ImageList)
        batch_size, _, height, width = images.tensors.shape
        assert batch_size == 2 and height % 32 == 0 and width % 32 == 0
        assert positive_map.shape == (sum(len(t) for t in targets), 256)
        assert all(t.has_field("caption") for t in targets)
        assert positive_map_eval is None


def test_max_epoch_derives_max_iter_and_copies_repeat(data_cfg):
    cfg = data_cfg
    cfg.DATASETS.TRAIN = ("coco_grounding_train",)
    cfg.DATASETS.COCO_COPY = 3  # upstream's copy rule for this name (GENERAL_COPY does not apply to it)
    cfg.SOLVER.MAX_EPOCH = 2
    cfg.SOLVER.IMS_PER_BATCH = 4
    cfg.DATALOADER.ASPECT_RATIO_GROUPING = False
    cfg.freeze()
    loader = make_data_loader(cfg, is_train=True)
    assert loader.dataset_length == 18
    assert loader.max_iter == 2 * 18 // 4 == cfg.SOLVER.MAX_ITER
    assert cfg.SOLVER.DATASET_LENGTH == 18 and cfg.is_frozen()
    assert len(list(loader)) == 9
    assert compute_max_iter(cfg, 100) == 50


def _fingerprint(batch):
    images, targets, ids, positive_map, _ = batch
    return (tuple(ids), tuple(t.get_field("caption") for t in targets), images.tensors.sum().item(),
            tuple(tuple(t.bbox.flatten().tolist()) for t in targets), positive_map.sum().item())


def test_resumed_loader_yields_the_same_batches(data_cfg):
    cfg = data_cfg
    cfg.DATASETS.TRAIN = ("coco_grounding_train",)
    cfg.AUGMENT.MULT_MIN_SIZE_TRAIN = (64, 72, 80)
    cfg.AUGMENT.FLIP_PROB_TRAIN = 0.5
    cfg.SOLVER.MAX_ITER = 8
    cfg.DATALOADER.ASPECT_RATIO_GROUPING = True
    full = [_fingerprint(b) for b in make_data_loader(cfg, is_train=True)]
    assert len(full) == 8
    assert len({f[1] for f in full}) > 1  # captions are shuffled, so randomness is in play
    cfg.DATALOADER.NUM_WORKERS = 1
    resumed = [_fingerprint(b) for b in make_data_loader(cfg, is_train=True, start_iter=5)]
    assert resumed == full[5:]
    cfg.SOLVER.SEED = 1
    cfg.DATALOADER.NUM_WORKERS = 0
    other = [_fingerprint(b) for b in make_data_loader(cfg, is_train=True)]
    assert other != full


def test_aspect_ratio_grouping(data_cfg):
    cfg = data_cfg
    cfg.DATASETS.TRAIN = ("coco_grounding_train",)
    cfg.SOLVER.MAX_ITER = 6
    loader = make_data_loader(cfg, is_train=True)
    dataset = loader.dataset
    for _, _targets, ids, _, _ in loader:
        groups = {dataset.get_img_info(i)["height"] >= dataset.get_img_info(i)["width"] for i in ids}
        assert len(groups) == 1


def test_odinw_task_config_with_register_and_caption_prompt(data_cfg):
    cfg = data_cfg
    cfg.merge_from_file(os.path.join(REPO, "configs", "odinw", "Aquarium_Aquarium_Combined.v2-raw-1024.coco.yaml"))
    cfg.merge_from_list(["INPUT.MIN_SIZE_TEST", 64, "INPUT.MAX_SIZE_TEST", 100, "INPUT.MIN_SIZE_TRAIN", 64,
                         "INPUT.MAX_SIZE_TRAIN", 100, "DATASETS.USE_CAPTION_PROMPT", True,
                         "DATASETS.DISABLE_SHUFFLE", True, "DATASETS.TRAIN_DATASETNAME_SUFFIX", "_grounding"])
    (test_loader,) = make_data_loader(cfg, is_train=False)
    dataset = test_loader.dataset
    assert len(dataset) == 6 and len(dataset.categories()) == 7
    batches = list(test_loader)  # the yaml sets TEST.IMS_PER_BATCH 8: one batch per padded size
    assert sorted(i for batch in batches for i in batch[2]) == list(range(6))
    assert all(batch[3] is None and all(t.has_field("labels") for t in batch[1]) for batch in batches)
    train = build_dataset(cfg, "train", is_train=True)
    assert len(train) == 16 * 6  # GENERAL_COPY 16
    caption = train[0][1].get_field("caption")
    assert caption.startswith(" fish. jellyfish. penguin , which is black and white. puffin with orange beaks ")


def test_lvis_and_flickr_test_configs(data_cfg):
    cfg = data_cfg
    cfg.merge_from_file(os.path.join(REPO, "configs", "lvis", "minival.yaml"))
    cfg.merge_from_list(["INPUT.MIN_SIZE_TEST", 64, "INPUT.MAX_SIZE_TEST", 100])
    (loader,) = make_data_loader(cfg, is_train=False)
    assert type(loader.dataset).__name__ == "LvisDetection" and len(loader.dataset.categories()) == 40
    cfg = data_cfg.clone()
    cfg.merge_from_file(os.path.join(REPO, "configs", "flickr", "test.yaml"))
    cfg.merge_from_list(["INPUT.MIN_SIZE_TEST", 64, "INPUT.MAX_SIZE_TEST", 100, "TEST.IMS_PER_BATCH", 1])
    (loader,) = make_data_loader(cfg, is_train=False)
    _, targets, _, _, positive_map_eval = next(iter(loader))
    assert positive_map_eval[0].shape[0] == targets[0].get_field("nb_eval")


def test_bad_names_and_unsupported_formats(data_cfg, tmp_path, monkeypatch):
    cfg = data_cfg
    with pytest.raises(KeyError, match="not in the catalog"):
        build_dataset(cfg, "no_such_dataset", is_train=False)
    cfg.DATASETS.TRAIN = ()
    with pytest.raises(ValueError, match="DATASETS.TRAIN is empty"):
        make_data_loader(cfg, is_train=True)
    monkeypatch.setenv("DATASET", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="coco_2017_val.*coco/val2017 was not found"):
        build_dataset(cfg, "coco_2017_val", is_train=False)
    cfg.SOLVER.IMS_PER_BATCH = 3
    cfg.DATASETS.TRAIN = ("coco_grounding_train",)
    with pytest.raises(ValueError, match="divisible by the number of processes"):
        make_data_loader(cfg, is_train=True, num_replicas=2, rank=0)


def test_one_configs_registered_names_do_not_leak_into_the_next(data_cfg):
    from maskrcnn_benchmark.config.paths_catalog import DatasetCatalog

    builtin_lvis_val = DatasetCatalog.entry("lvis_evaluation_val")
    task = data_cfg.clone()
    task.merge_from_file(os.path.join(REPO, "configs", "odinw", "Aquarium_Aquarium_Combined.v2-raw-1024.coco.yaml"))
    assert len(build_dataset(task, "val", is_train=False)) > 0
    lvis = data_cfg.clone()
    lvis.merge_from_file(os.path.join(REPO, "configs", "lvis", "minival.yaml"))
    assert type(build_dataset(lvis, "lvis_evaluation_mini_val", is_train=False)).__name__ == "LvisDetection"
    # A later config that does not register "val" gets an error, not the previous task's data set, and the
    # LVIS task file's replacement of the built-in lvis_evaluation_val is gone.
    with pytest.raises(KeyError, match="'val' is not in the catalog"):
        build_dataset(data_cfg, "val", is_train=False)
    assert DatasetCatalog.entry("lvis_evaluation_val") == builtin_lvis_val


def test_empty_data_sets_are_refused_naming_the_set_and_file(data_cfg, tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("DATASET", str(tmp_path))
    (tmp_path / "images").mkdir()
    categories = [{"id": 1, "name": "thing"}]
    (tmp_path / "empty.json").write_text(json.dumps({"images": [], "annotations": [], "categories": categories}))
    boxless = {"images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}], "annotations": [],
               "categories": categories}
    (tmp_path / "boxless.json").write_text(json.dumps(boxless))
    cfg = data_cfg
    cfg.merge_from_list(["DATASETS.REGISTER", {"empty_val": {"ann_file": "empty.json", "img_dir": "images"},
                                               "boxless_train": {"ann_file": "boxless.json", "img_dir": "images"}},
                         "DATASETS.TEST", ("empty_val",), "DATASETS.TRAIN", ("boxless_train",)])
    # Evaluation used to run and report null metrics; training blamed SOLVER.IMS_PER_BATCH.
    with pytest.raises(ValueError, match=r"'empty_val' \[COCODataset\] \(.*empty.json\) has no images: nothing to "
                                         r"evaluate"):
        make_data_loader(cfg, is_train=False)
    with pytest.raises(ValueError, match=r"'boxless_train' .*boxless.json\) has no images with a usable box"):
        make_data_loader(cfg, is_train=True)


def _padded(size, divisor=32):
    return tuple(-(-s // divisor) * divisor for s in size)


def test_test_batches_hold_one_padded_size(data_cfg):
    from maskrcnn_benchmark.data.build import padded_size_groups

    cfg = data_cfg
    cfg.DATASETS.TEST = ("coco_2017_val",)
    (loader,) = make_data_loader(cfg, is_train=False)
    groups = padded_size_groups(cfg, loader.dataset)
    assert groups is not None and len(set(groups)) > 1  # the synthetic images come in several sizes
    seen = []
    for images, _, ids, _, _ in loader:
        assert len(ids) <= 4
        assert {_padded(size) for size in images.image_sizes} == {tuple(images.tensors.shape[-2:])}
        assert len({groups[i] for i in ids}) == 1
        seen += list(ids)
    assert sorted(seen) == list(range(len(loader.dataset)))


def test_padded_size_groups_needs_sizes_and_a_fixed_resize(data_cfg):
    from maskrcnn_benchmark.data.build import padded_size_groups

    class NoSizes:
        def __len__(self):
            return 2

        def get_img_info(self, index):
            return {"id": index}

    assert padded_size_groups(data_cfg, NoSizes()) is None
    assert padded_size_groups(data_cfg, [1, 2]) is None
    cfg = data_cfg.clone()
    cfg.INPUT.MIN_SIZE_TEST = (64, 96)
    cfg.DATASETS.TEST = ("coco_2017_val",)
    (loader,) = make_data_loader(cfg, is_train=False)
    assert padded_size_groups(cfg, loader.dataset) is None


def test_size_buckets_make_batched_eval_equal_to_one_image_at_a_time(data_cfg, bpe_tokenizer_dir):
    import torch

    from maskrcnn_benchmark.engine.inference import inference
    from maskrcnn_benchmark.modeling.detector import build_detection_model

    cfg = data_cfg
    cfg.merge_from_file(os.path.join(REPO, "configs", "tiny", "fiber_tiny.yaml"))
    cfg.merge_from_list(["INPUT.MIN_SIZE_TEST", 64, "INPUT.MAX_SIZE_TEST", 100, "MODEL.ATSS.INFERENCE_TH", 0.0,
                         "TEST.EVAL_TASK", "detection", "DATASETS.TEST", ("coco_2017_val",),
                         "MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE", bpe_tokenizer_dir])
    torch.manual_seed(0)
    model = build_detection_model(cfg).eval()

    class Recorder:
        def __init__(self):
            self.results = {}

        def update(self, ids, boxlists):
            self.results.update(zip(ids, boxlists))

        def evaluate(self):
            return {}

    outputs = []
    for batch in (1, 4):
        cfg.TEST.IMS_PER_BATCH = batch
        (loader,) = make_data_loader(cfg, is_train=False)
        recorder = Recorder()
        inference(model, loader, "coco_2017_val", device="cpu", cfg=cfg, evaluator=recorder)
        outputs.append(recorder.results)
    assert outputs[0].keys() == outputs[1].keys() and len(outputs[0]) == 6
    for image_id, single in outputs[0].items():
        batched = outputs[1][image_id]
        assert len(single) > 0 and single.get_field("labels").tolist() == batched.get_field("labels").tolist()
        torch.testing.assert_close(batched.get_field("scores"), single.get_field("scores"), rtol=0, atol=1e-5)
        torch.testing.assert_close(batched.bbox, single.bbox, rtol=0, atol=1e-3)


def test_num_workers_capped_by_available_cpus(data_cfg, monkeypatch, caplog):
    import logging

    from maskrcnn_benchmark.data import build

    assert build.capped_num_workers(4, cpus=2) == 2
    assert build.capped_num_workers(2, cpus=2) == 2 and build.capped_num_workers(0, cpus=2) == 0
    with pytest.raises(ValueError, match="NUM_WORKERS must be >= 0"):
        build.capped_num_workers(-1, cpus=2)
    assert 1 <= build.available_cpus() <= (os.cpu_count() or 1)
    monkeypatch.setattr(build, "available_cpus", lambda: 1)
    data_cfg.DATASETS.TEST = ("coco_2017_val",)
    data_cfg.DATALOADER.NUM_WORKERS = 7
    with caplog.at_level(logging.INFO, logger="maskrcnn_benchmark.data.build"):
        (loader,) = make_data_loader(data_cfg, is_train=False)
    assert loader.num_workers == 1
    assert "DATALOADER.NUM_WORKERS 7 capped to 1" in caplog.text
