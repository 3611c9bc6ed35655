"""tools/test_grounding_net.py on synthetic COCO, LVIS (chunked), ODinW, Flickr30k and RefCOCO copies."""

import json

import pytest
import torch
from _tool_helpers import REPO, TINY, TOOLS, run_tool

pytestmark = pytest.mark.skipif(not TINY.is_file(), reason="configs/tiny/fiber_tiny.yaml is absent")

TASKS = {
    "lvis": REPO / "configs" / "lvis" / "minival.yaml",
    "flickr": REPO / "configs" / "flickr" / "test.yaml",
    "refcoco": REPO / "configs" / "refexp" / "_refcoco_testA.yaml",
    "odinw": REPO / "configs" / "odinw" / "Aquarium_Aquarium_Combined.v2-raw-1024.coco.yaml",
    "odinw13": REPO / "configs" / "odinw_13" / "Aquarium_Aquarium_Combined.v2-raw-1024.coco.yaml",
}
FAST = ["INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "96", "TEST.IMS_PER_BATCH", "3"]


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from maskrcnn_benchmark.data.synthetic import make_all

    root = tmp_path_factory.mktemp("synthetic")
    make_all(str(root), seed=0, num_images=4, lvis_categories=90, objects365_categories=10)
    return root


@pytest.fixture(scope="module")
def tiny_weight(tmp_path_factory, bpe_tokenizer_dir):
    from maskrcnn_benchmark.config import load_config
    from maskrcnn_benchmark.modeling.detector import build_detection_model

    cfg = load_config(str(TINY), ["MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE", bpe_tokenizer_dir])
    torch.manual_seed(0)
    model = build_detection_model(cfg)
    path = tmp_path_factory.mktemp("weights") / "tiny_random.pth"
    torch.save({"model": model.state_dict()}, path)
    return path


@pytest.mark.slow
def test_every_kind_of_task_end_to_end(tmp_path, synthetic_root, tiny_weight, bpe_tokenizer_dir):
    missing = [str(p) for p in TASKS.values() if not p.is_file()]
    if missing:
        pytest.skip(f"task configs absent: {missing}")
    coco_task = tmp_path / "coco_task.yaml"
    coco_task.write_text('DATASETS:\n  TEST: ("coco_2017_val",)\n')
    coco_top1 = tmp_path / "coco_top1.yaml"
    coco_top1.write_text('DATASETS:\n  TEST: ("coco_2017_val",)\nMODEL:\n  ATSS:\n    DETECTIONS_PER_IMG: 1\n'
                         '    INFERENCE_TH: 0.0\n  DYHEAD:\n    NUM_CLASSES: 8\n')
    tasks = [coco_task, coco_top1] + list(TASKS.values())
    out = tmp_path / "out"
    result = run_tool([TOOLS / "test_grounding_net.py", "--config-file", TINY, "--weight", tiny_weight,
                       "--task_config", ",".join(str(t) for t in tasks),
                       "MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE", bpe_tokenizer_dir, "OUTPUT_DIR", out,
                       "TEST.CHUNKED_EVALUATION", "40", "TEST.MDETR_STYLE_AGGREGATE_CLASS_NUM", "3000",
                       "MODEL.ATSS.INFERENCE_TH", "0.0", *FAST], tmp_path, synthetic_root, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    root = out / "eval" / "tiny_random"
    summary = json.loads((root / "summary.json").read_text())
    expected_sets = {"coco_2017_val", "lvis_evaluation_mini_val", "flickr30k_test", "refcoco_testA", "val"}
    seen = {name for datasets in summary["tasks"].values() for name in datasets}
    assert expected_sets <= seen
    assert summary["odinw_num_tasks"] == 2 and summary["odinw_average_AP"] is not None
    for folder in ("coco_2017_val", "lvis_evaluation_mini_val", "flickr30k_test", "refcoco_testA", "val"):
        files = {p.name for p in (root / folder).iterdir()}
        assert {"metrics.json", "metrics.txt"} <= files, (folder, files)
        assert any(name.endswith(".json") and name != "metrics.json" for name in files), (folder, files)
    metrics = {name: m for datasets in summary["tasks"].values() for name, m in datasets.items()}
    assert "AP" in metrics["lvis_evaluation_mini_val"] and "APr" in metrics["lvis_evaluation_mini_val"]
    assert "R@1" in metrics["flickr30k_test"]
    assert "accuracy" in str(metrics["refcoco_testA"])
    # LVIS: 90 classes in chunks of 40 -> 3 prompts; every class label can appear (global ids).
    log = (out / "test_grounding_net_log.txt").read_text()
    assert "3 prompt(s) for 90 classes" in log
    lvis_predictions = json.loads((root / "lvis_evaluation_mini_val" / "predictions.json").read_text())
    lvis_ids = {r["category_id"] for r in lvis_predictions}
    assert min(lvis_ids) <= 40 and max(lvis_ids) > 80  # labels of the first and the last chunk
    # The task config's post-processing keys took effect (1 box per image), its NUM_CLASSES placeholder did not.
    default_preds = json.loads((root / "coco_2017_val" / "bbox.json").read_text())
    top1_preds = json.loads((root / "coco_top1" / "coco_2017_val" / "bbox.json").read_text())
    per_image = {}
    for record in top1_preds:
        per_image[record["image_id"]] = per_image.get(record["image_id"], 0) + 1
    assert len(top1_preds) >= 1 and max(per_image.values()) == 1
    assert len(default_preds) > len(top1_preds)
    assert "MODEL.DYHEAD.NUM_CLASSES" in log and "post-processing keys taking effect" in log


@pytest.mark.slow
def test_two_process_evaluation_equals_one_process(tmp_path, tiny_weight, bpe_tokenizer_dir):
    import socket

    from _tool_helpers import write_fixed_size_coco

    data = write_fixed_size_coco(tmp_path / "data", num_images=5)  # odd: shards of 3 and 2, nothing repeated
    task = tmp_path / "coco_task.yaml"
    task.write_text('DATASETS:\n  TEST: ("coco_2017_val",)\n')
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    common = ["--config-file", TINY, "--weight", tiny_weight, "--task_config", task,
              "MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE", bpe_tokenizer_dir, "MODEL.ATSS.INFERENCE_TH", "0.0",
              "TEST.EVAL_TASK", "detection", *FAST, "TEST.IMS_PER_BATCH", "2"]
    one = run_tool([TOOLS / "test_grounding_net.py", *common, "OUTPUT_DIR", tmp_path / "one"], tmp_path, data)
    assert one.returncode == 0, one.stderr[-3000:]
    two = run_tool(["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
                    TOOLS / "test_grounding_net.py", *common, "OUTPUT_DIR", tmp_path / "two"], tmp_path, data)
    assert two.returncode == 0, two.stderr[-3000:]
    load = lambda out: json.loads((out / "eval" / "tiny_random" / "coco_2017_val" / "bbox.json").read_text())  # noqa
    a, b = load(tmp_path / "one"), load(tmp_path / "two")
    assert len(a) == len(b) and {r["image_id"] for r in a} == {r["image_id"] for r in b}
    key = lambda r: (r["image_id"], r["category_id"], round(r["score"], 4))  # noqa: E731
    assert sorted(map(key, a)) == sorted(map(key, b))
    metrics = lambda out: json.loads((out / "eval" / "tiny_random" / "coco_2017_val" / "metrics.json").read_text())  # noqa
    assert metrics(tmp_path / "one")["AP"] == pytest.approx(metrics(tmp_path / "two")["AP"], abs=1e-6)
