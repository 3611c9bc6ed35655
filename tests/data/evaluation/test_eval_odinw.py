import pytest

from maskrcnn_benchmark.data.evaluation.odinw import (
    ODINW_13,
    ODINW_35,
    collect_odinw_results,
    format_odinw_table,
    odinw_average,
)


def test_lists_have_13_and_35_distinct_names_and_13_is_a_subset():
    assert len(ODINW_13) == len(set(ODINW_13)) == 13
    assert len(ODINW_35) == len(set(ODINW_35)) == 35
    assert set(ODINW_13) <= set(ODINW_35)


def test_average_over_13_and_35():
    results_35 = {name: float(i) for i, name in enumerate(ODINW_35)}
    report_35 = odinw_average(results_35, which=35)
    assert report_35["average"] == pytest.approx(sum(range(35)) / 35)
    expected_13 = sum(results_35[name] for name in ODINW_13) / 13
    report_13 = odinw_average(results_35, which=13)
    assert report_13["average"] == pytest.approx(expected_13)
    assert report_13["num_datasets"] == 13 and len(report_13["ignored"]) == 22


def test_metric_dicts_and_yaml_paths_are_accepted():
    results = {f"configs/odinw_13/{name}.yaml": {"AP": 50.0, "AP50": 70.0} for name in ODINW_13}
    results[f"configs/odinw_13/{ODINW_13[0]}.yaml"] = {"AP": 63.0}
    assert odinw_average(results, which="odinw_13")["average"] == pytest.approx(50.0 + 13.0 / 13)


def test_missing_datasets_are_never_silently_averaged():
    results = {name: 40.0 for name in ODINW_13[:-2]}
    results[ODINW_13[0]] = 62.0
    with pytest.raises(ValueError, match=r"missing 2: pothole, thermalDogsAndPeople"):
        odinw_average(results, which=13)
    report = odinw_average(results, which=13, allow_missing=True)
    assert report["average"] is None
    assert report["partial_average"] == pytest.approx((62.0 + 40.0 * 10) / 11)
    assert report["missing"] == ["pothole", "thermalDogsAndPeople"]
    table = format_odinw_table(report)
    assert "MISSING" in table and "NOT odinw_13" in table


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown ODinW list"):
        odinw_average({}, which=14)
    with pytest.raises(ValueError, match="has no 'AP'"):
        odinw_average({name: {"AP50": 1.0} for name in ODINW_13})


def test_results_written_by_the_tools_are_collected():
    summary = {"tasks": {f"configs/odinw_13/{name}.yaml": {"val": {"AP": 10.0}} for name in ODINW_13}}
    summary["tasks"][f"configs/odinw_13/{ODINW_13[1]}.yaml"] = {"val": {"AP": 1.0}, "test": {"AP": 36.0}}
    assert odinw_average(collect_odinw_results(summary))["average"] == pytest.approx(12.0)
    finetune = {"task_means": {f"configs/odinw_13/{name}.yaml": 20.0 for name in ODINW_13}, "average": 20.0}
    finetune["task_means"][f"configs/odinw_13/{ODINW_13[3]}.yaml"] = None
    with pytest.raises(ValueError, match="missing 1: EgoHands_generic"):
        odinw_average(collect_odinw_results(finetune))
    ambiguous = {"tasks": {"configs/odinw_13/pothole.yaml": {"val": {"AP": 1.0}, "minival": {"AP": 2.0}}}}
    with pytest.raises(ValueError, match="cannot tell which one"):
        collect_odinw_results(ambiguous)
