"""Fixtures for the data tests: one synthetic data root (every format) per session."""

import pytest


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A data root written by ``make_all`` (6 images per split, 40 LVIS categories); returns (root, manifest)."""
    from maskrcnn_benchmark.data.synthetic import make_all

    root = tmp_path_factory.mktemp("synthetic_data")
    manifest = make_all(str(root), seed=0, num_images=6)
    return str(root), manifest
