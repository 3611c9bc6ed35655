"""tools/finetune.py on a synthetic ODinW (Aquarium) copy: 1-shot seeded and 3-shot upstream subsets, two seeds,
results table."""

import json

import pytest
from _tool_helpers import REPO, TINY, TOOLS, run_tool

TASK = REPO / "configs" / "odinw" / "Aquarium_Aquarium_Combined.v2-raw-1024.coco.yaml"
pytestmark = pytest.mark.skipif(not (TINY.is_file() and TASK.is_file()), reason="tiny or Aquarium config absent")

FAST = ["INPUT.MIN_SIZE_TRAIN", "64", "INPUT.MAX_SIZE_TRAIN", "96", "AUGMENT.MULT_MIN_SIZE_TRAIN", "(64,)",
        "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "96", "SOLVER.IMS_PER_BATCH", "2",
        "TEST.IMS_PER_BATCH", "4", "SOLVER.WARMUP_ITERS", "0"]


@pytest.mark.slow
def test_few_shot_seeds_give_different_subsets_and_a_table(tmp_path, bpe_tokenizer_dir):
    from maskrcnn_benchmark.data.synthetic import write_odinw

    write_odinw(str(tmp_path / "data"), seed=0, num_images=14)
    results = {}
    for shots, subset in ((1, "seeded"), (3, "upstream")):
        out = tmp_path / f"out_{shots}"
        tasks = str(REPO / "configs/odinw/Aq*.yaml")
        result = run_tool([TOOLS / "finetune.py", "--config-file", TINY, "--ft-tasks", tasks,
                           "--custom_shot_and_epoch_and_general_copy", f"{shots}_1_1", "--shuffle_seeds", "3,30",
                           "--skip-test", "--evaluate_only_best_on_test",
                           "MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE", bpe_tokenizer_dir, "OUTPUT_DIR", out,
                           "TEST.EVAL_TASK", "detection", "DATASETS.TRAIN_DATASETNAME_SUFFIX", "_grounding",
                           "DATASETS.USE_CAPTION_PROMPT", "True", "DATASETS.DISABLE_SHUFFLE", "True",
                           "SOLVER.TUNING_HIGHLEVEL_OVERRIDE", "full", "DATASETS.FEW_SHOT_SUBSET", subset, *FAST],
                          tmp_path, tmp_path / "data", timeout=900)
        assert result.returncode == 0, result.stderr[-4000:]
        table = (out / "finetune_results.txt").read_text()
        assert table in result.stdout  # printed too
        assert f"few-shot training subsets: DATASETS.FEW_SHOT_SUBSET {subset}" in table
        assert f"{shots}-shot subset: DATASETS.FEW_SHOT_SUBSET {subset}" in result.stdout + result.stderr
        for row in ("seed 3", "seed 30", "mean", "average over tasks"):
            assert row in table
        data = json.loads((out / "finetune_results.json").read_text())
        runs = data["runs"][str(TASK)]
        assert set(runs) == {"seed 3", "seed 30"}
        for run in runs.values():
            assert run["summary"]["trained"] and "best_test" in run and "final" not in run
            described = run["summary"]["few_shot_subset"]
            assert described.startswith(f"{shots}-shot subset: DATASETS.FEW_SHOT_SUBSET {subset}")
        assert (out / "ft_task_1_seed_3" / "model_final.pth").is_file()
        results[shots] = {seed: set(run["summary"]["train_image_ids"]) for seed, run in runs.items()}
    # Seeded subsets differ per seed; upstream's is the same for every seed (and 3 shots take more images).
    assert results[1]["seed 3"] != results[1]["seed 30"]
    assert results[3]["seed 3"] == results[3]["seed 30"]
    for seed in ("seed 3", "seed 30"):
        assert len(results[3][seed]) > len(results[1][seed])
