"""Fixtures of the evaluator tests."""

import pytest
from eval_testdata import make_coco_gt, make_lvis_gt


@pytest.fixture
def coco_gt():
    return make_coco_gt()


@pytest.fixture
def lvis_gt():
    return make_lvis_gt()
