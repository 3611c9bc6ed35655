"""Objects365 TSV reader (upstream's CocoDetectionTSV format) and the catalog's COCO-JSON fallback."""

import json
import os
import random
import shutil

import pytest

from maskrcnn_benchmark.config import cfg as base_cfg
from maskrcnn_benchmark.data.build import build_dataset
from maskrcnn_benchmark.data.datasets import CocoDetectionTSV


def test_tsv_rows_match_the_drawing(synthetic_root, bpe_tokenizer):
    _, manifest = synthetic_root
    tsv = manifest["objects365_tsv"]
    ds = CocoDetectionTSV(tsv["yaml_file"], tokenizer=bpe_tokenizer, control_probabilities=(0.0, 0.0, 1.0, 0.0))
    assert len(ds) == tsv["num_rows"] == 7  # 6 rows + the first one repeated by the line list
    assert ds.categories()[1] == "red square" and ds.ind_to_class[0] == "__background__"
    for idx in (0, 6):
        image, target, i = ds[idx]
        info = ds.get_img_info(idx)
        assert image.size == (info["width"], info["height"])
        drawn = tsv["objects"][info["key"]]
        assert sorted([round(v) for v in b] for b in target.bbox.tolist()) == sorted(b for _, b in drawn)
        caption = target.get_field("caption")
        names = [ds.ind_to_class[k] for k in target.get_field("labels").tolist()]
        assert [caption[s:e] for ((s, e),) in target.get_field("tokens_positive")] == names
        assert target.get_field("positive_map").shape == (len(target), 256)
    assert ds.get_img_info(0)["key"] == ds.get_img_info(6)["key"]


def test_malformed_tsv_rows_and_parts(synthetic_root, tmp_path, bpe_tokenizer):
    _, manifest = synthetic_root
    src = os.path.dirname(manifest["objects365_tsv"]["yaml_file"])
    folder = tmp_path / "o365"
    shutil.copytree(src, folder, ignore=shutil.ignore_patterns("train", "annotations"))
    label = folder / "train.label.tsv"
    lines = label.read_text().splitlines()
    key, objects = lines[1].split("\t")
    objects = json.loads(objects)
    objects[0]["class"] = "unicorn"
    lines[1] = key + "\t" + json.dumps(objects)
    label.write_text("\n".join(lines) + "\n")
    (folder / "train.label.lineidx").unlink()  # offsets are recomputed in memory when the index is absent
    ds = CocoDetectionTSV(str(folder / "objects365_train_vgoiv6.cas2000.yaml"), tokenizer=bpe_tokenizer)
    random.seed(0)
    ds[0]
    with pytest.raises(ValueError, match=r"train.label.tsv: row 1 .*class 'unicorn', not in the label map"):
        ds[1]
    (folder / "train.hw.tsv").unlink()
    with pytest.raises(FileNotFoundError, match="'hw' file train.hw.tsv not found"):
        CocoDetectionTSV(str(folder / "objects365_train_vgoiv6.cas2000.yaml"))


def test_catalog_uses_the_json_copy_without_tsv_files(synthetic_root, tmp_path, monkeypatch, bpe_tokenizer_dir):
    root, _ = synthetic_root
    shutil.copytree(os.path.join(root, "Objects365"), tmp_path / "Objects365",
                    ignore=shutil.ignore_patterns("*.yaml"))
    cfg = base_cfg.clone()
    cfg.MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE = bpe_tokenizer_dir
    monkeypatch.setenv("DATASET", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    dataset = build_dataset(cfg, "object365_dt_train", is_train=True)
    assert type(dataset).__name__ == "Objects365Grounding"
    monkeypatch.setenv("DATASET", root)
    dataset = build_dataset(cfg, "object365_dt_train", is_train=True)
    assert type(dataset).__name__ == "CocoDetectionTSV"
