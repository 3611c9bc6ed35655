"""What ``pip install .`` installs: packages, dependencies and console scripts declared in setup.py."""

import ast
import importlib
from pathlib import Path

import pytest
from setuptools import find_packages

from maskrcnn_benchmark.cli import CONSOLE_SCRIPTS

REPO = Path(__file__).resolve().parents[1]


def _setup_call():
    tree = ast.parse((REPO / "setup.py").read_text())
    assignments = {node.targets[0].id: node.value for node in tree.body
                   if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}
    call = next(node.value for node in tree.body if isinstance(node, ast.Expr)
                and isinstance(node.value, ast.Call) and getattr(node.value.func, "id", "") == "setup")
    keywords = {kw.arg: kw.value for kw in call.keywords}
    return assignments, keywords


def test_console_scripts_resolve_to_the_cli_mains():
    assignments, keywords = _setup_call()
    declared = ast.literal_eval(assignments["CONSOLE_SCRIPTS"])
    assert ast.unparse(keywords["entry_points"]) == "{'console_scripts': CONSOLE_SCRIPTS}"
    parsed = dict(tuple(part.strip() for part in line.split("=")) for line in declared)
    assert parsed == CONSOLE_SCRIPTS
    assert set(parsed) == {"fiber-train", "fiber-test", "fiber-finetune", "fiber-demo"}
    for target in parsed.values():
        module_name, function = target.split(":")
        module = importlib.import_module(module_name)
        assert callable(getattr(module, function)), target
        assert callable(module.build_parser) and callable(module.run)


@pytest.mark.parametrize("script", sorted(CONSOLE_SCRIPTS))
def test_console_script_prints_help(script, capsys):
    module_name, function = CONSOLE_SCRIPTS[script].split(":")
    main = getattr(importlib.import_module(module_name), function)
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "--config-file" in capsys.readouterr().out


def test_odinw_and_evaluation_back_ends_are_installed():
    _, keywords = _setup_call()
    exclude = ast.literal_eval(keywords["packages"].keywords[0].value)
    packages = find_packages(str(REPO), exclude=exclude)
    assert "odinw" in packages and "maskrcnn_benchmark.cli" in packages
    assert not any(p.split(".")[0] in ("tests", "tools", "benchmarks", "configs") for p in packages)
    assert ast.literal_eval(keywords["package_data"]) == {"odinw": ["odinw_datasets.json"]}
    assert (REPO / "odinw" / "odinw_datasets.json").is_file()
    requires = [ast.literal_eval(node) for node in keywords["install_requires"].elts]
    assert {"lvis", "faster-coco-eval", "pycocotools"} <= set(requires)
