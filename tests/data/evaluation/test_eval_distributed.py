"""Evaluators gather predictions from every process: two gloo processes each see half of the images."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from eval_testdata import make_coco_gt, make_lvis_gt

from maskrcnn_benchmark.data.evaluation import CocoEvaluator, LvisEvaluator, RefExpEvaluator
from maskrcnn_benchmark.structures.bounding_box import BoxList
from maskrcnn_benchmark.utils import distributed as comm


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _perfect(gt, image, label_of, plus_one):
    anns = [a for a in gt["annotations"] if a["image_id"] == image["id"] and not a.get("iscrowd", 0)]
    extra = 1 if plus_one else 0
    boxes = torch.tensor([[x, y, x + w - extra, y + h - extra] for x, y, w, h in (a["bbox"] for a in anns)],
                         dtype=torch.float64).reshape(-1, 4)
    boxlist = BoxList(boxes.float(), (image["width"], image["height"]), mode="xyxy")
    boxlist.add_field("scores", torch.ones(len(anns)))
    boxlist.add_field("labels", torch.tensor([label_of(a) for a in anns], dtype=torch.int64))
    return boxlist


def _worker(rank, port, tmp, queue):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    assert comm.init_distributed_from_env(backend="gloo")
    coco_gt = make_coco_gt(seed=7, num_images=20)
    label_map = {i + 1: c["id"] for i, c in enumerate(coco_gt["categories"])}
    contiguous = {v: k for k, v in label_map.items()}
    coco = CocoEvaluator(coco_gt, label_map, coco_gt["images"].__getitem__, output_dir=os.path.join(tmp, "coco"))
    lvis_gt = make_lvis_gt(seed=3, num_images=20)
    lvis = LvisEvaluator(lvis_gt, lvis_gt["images"].__getitem__, backend="faster")
    refexp_gt = {"images": [{"id": i + 1, "width": 50, "height": 50, "dataset_name": "refcoco"} for i in range(6)],
                 "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [i, i, 10, 10]}
                                 for i in range(6)], "categories": [{"id": 1, "name": "o"}]}
    refexp = RefExpEvaluator(refexp_gt, refexp_gt["images"].__getitem__)
    for idx in range(rank, 20, 2):  # rank 0 even indices, rank 1 odd ones
        coco.update([idx], [_perfect(coco_gt, coco_gt["images"][idx], lambda a: contiguous[a["category_id"]], True)])
        lvis.update([idx], [_perfect(lvis_gt, lvis_gt["images"][idx], lambda a: a["category_id"], False)])
    for idx in range(rank, 6, 2):
        refexp.update([idx], [_perfect(refexp_gt, refexp_gt["images"][idx], lambda a: 1, False)])
    results = (rank, coco.evaluate().get("AP"), lvis.evaluate().get("AP"), refexp.evaluate().get("accuracy"))
    queue.put(results)
    comm.cleanup_distributed()


@pytest.mark.slow  # two spawned interpreters importing torch: ~10-20 s on 2 cores
def test_two_process_synchronize(tmp_path):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(rank, port, str(tmp_path), queue)) for rank in range(2)]
    for proc in procs:
        proc.start()
    results = sorted(queue.get(timeout=180) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    (_, coco_ap, lvis_ap, accuracy), (_, *others) = results
    assert abs(coco_ap - 100.0) < 1e-6 and abs(lvis_ap - 100.0) < 1e-6 and accuracy == 100.0
    assert others == [None, None, None]  # only rank 0 scores
    assert (tmp_path / "coco" / "bbox.json").is_file()
